// cuFFT's transform on the host (tests only: kernels/host/run.cpp and emulator.cpp).
#pragma once
#include <cmath>
#include <vector>

// The length-n transform of x[0], x[s], ..., x[(n - 1) s] into y[0..n), n dividing the
// top level's length N, tw[j] = exp(direction 2 pi i j / N): decimation in time by n's
// smallest prime factor p (n = p m), the p sub-transforms then combined: by butterflies
// for p = 2, directly otherwise.
inline void fft_rec(const double2* x, long long s, long long n, double2* y, const std::vector<double2>& tw, long long N) {
    if (n == 1) {
        y[0] = x[0];
        return;
    }
    long long p = 2;
    while (n % p != 0 && p * p <= n) ++p;
    if (n % p != 0) p = n;
    long long m = n / p, step = N / n;
    for (long long r = 0; r < p; ++r) fft_rec(x + r * s, s * p, m, y + r * m, tw, N);
    if (p == 2) {
        for (long long k = 0; k < m; ++k) {
            const double2 w = tw[k * step], a = y[k], b = y[m + k];
            double br = b.x * w.x - b.y * w.y, bi = b.x * w.y + b.y * w.x;
            y[k] = make_double2(a.x + br, a.y + bi);
            y[m + k] = make_double2(a.x - br, a.y - bi);
        }
        return;
    }
    std::vector<double2> out(p);
    for (long long k = 0; k < m; ++k) {
        for (long long q = 0; q < p; ++q) {
            long long e = q * m + k;
            double re = 0.0, im = 0.0;
            for (long long r = 0; r < p; ++r) {
                const double2 w = tw[((r * e) % n) * step], v = y[r * m + k];
                re += v.x * w.x - v.y * w.y;
                im += v.x * w.y + v.y * w.x;
            }
            out[q] = make_double2(re, im);
        }
        for (long long q = 0; q < p; ++q) y[q * m + k] = out[q];
    }
}

// cuFFT's unnormalised Z2Z transform of an m x m plane in place (direction -1 forward,
// +1 inverse): a mixed-radix FFT along rows and then columns, exact twiddles.
inline void dft2(double2* g, long long m, int direction) {
    std::vector<double2> tw(m), line(m), out(m);
    for (long long k = 0; k < m; ++k) {
        double a = CONTIMG_TWO_PI * (double)k / (double)m;
        tw[k] = make_double2(std::cos(a), direction * std::sin(a));
    }
    for (int axis = 0; axis < 2; ++axis) {
        for (long long l = 0; l < m; ++l) {
            auto at = [&](long long i) -> double2& { return axis == 0 ? g[l * m + i] : g[i * m + l]; };
            for (long long i = 0; i < m; ++i) line[i] = at(i);
            fft_rec(line.data(), 1, m, out.data(), tw, m);
            for (long long i = 0; i < m; ++i) at(i) = out[i];
        }
    }
}
