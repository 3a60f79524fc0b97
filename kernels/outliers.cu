// The outliers' fits on a group held on the device (compute::device_outliers): the normal
// equations from the held visibilities and weights (the normal matrix at the first fit
// only), and the fitted increment subtracted there. CPU twin: imaging::outliers::OutlierModel (fit_and_subtract's sums and
// subtraction, with calibrate::model::ModelPredictor's unit predictions).
//
// Row r (of nrow) is baseline r / nt (antennas bl_a, bl_b), integration t = r % nt; the held
// visibilities and weights are row x channel x polarization. Source s's unit prediction on
// row r, channel c: amp[(t * ns + s) * nc + c] x sinc(pi (smear_b - smear_a)) x
// exp(2 pi i nu_c (delay_b - delay_a)), delay and smear [t][antenna][s] (s, cycles). Its
// basis functions are that prediction times x_c^e, e = 0, 1.

#include "common.cuh"

struct UnitModel {
    const int* bl_a;
    const int* bl_b;
    int nt, nc, ns, n_ant;
    const double* amp;
    const double* delay;
    const double* smear;
    const double* freqs;

    // Source s's prediction on row r at channel c.
    __device__ double2 at(int r, int s, int c) const {
        int bl = r / nt, t = r % nt;
        return point_source(amp, delay, smear, freqs, t, bl_a[bl], bl_b[bl], s, c, ns, nc, n_ant);
    }
};

// Row r's terms of the normal equations into partial[r * width ..]: first A^T W v, at 2 s + e
// the sum over channels of x_c^e Re(conj(m_s) v_c), v_c the weighted sum over polarizations
// of the held visibilities (weights above 0); then, with `with_ata` (the first fit: later
// fits reuse it, the weights stay), the upper triangle of A^T W A (k = 2 ns, nu = k (k + 1) / 2
// entries, row-major: entry (i, j), j >= i, at 2 ns + i k - i (i + 1) / 2 + j), the sum over
// channels of w_c x_c^(e1 + e2) Re(m_s1 conj(m_s2)) for i = 2 s1 + e1, j = 2 s2 + e2, w_c the
// sum of those weights. width = 2 ns (+ nu with_ata); zeros for rows not used.
extern "C" __global__ void outlier_rows(const float* vis, const float* wt, const unsigned char* use_row,
                                        const int* bl_a, const int* bl_b, int nrow, int nt, int nc, int np,
                                        int ns, int n_ant, const double* amp, const double* delay,
                                        const double* smear, const double* freqs, const double* xs,
                                        int with_ata, double* partial) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= nrow) return;
    int k = 2 * ns, width = k + (with_ata ? k * (k + 1) / 2 : 0);
    double* out = partial + (long long)r * width;
    for (int u = 0; u < width; ++u) out[u] = 0.0;
    if (!use_row[r]) return;
    double* ata = out + k;
    UnitModel m{bl_a, bl_b, nt, nc, ns, n_ant, amp, delay, smear, freqs};
    for (int c = 0; c < nc; ++c) {
        double vr = 0.0, vi = 0.0, w = 0.0;
        for (int p = 0; p < np; ++p) {
            long long j = ((long long)r * nc + c) * np + p;
            float x = wt[j];
            if (x > 0.0f) {
                w += (double)x;
                vr += (double)x * (double)vis[2 * j];
                vi += (double)x * (double)vis[2 * j + 1];
            }
        }
        if (w == 0.0) continue;
        double x = xs[c];
        for (int s1 = 0; s1 < ns; ++s1) {
            double2 u1 = m.at(r, s1, c);
            double d = u1.x * vr + u1.y * vi;
            out[2 * s1] += d;
            out[2 * s1 + 1] += d * x;
            if (!with_ata) continue;
            for (int s2 = s1; s2 < ns; ++s2) {
                double2 u2 = s2 == s1 ? u1 : m.at(r, s2, c);
                double a = w * (u1.x * u2.x + u1.y * u2.y);
                double q[3] = {a, a * x, a * x * x};
                for (int e1 = 0; e1 < 2; ++e1) {
                    for (int e2 = 0; e2 < 2; ++e2) {
                        int i = 2 * s1 + e1, j = 2 * s2 + e2;
                        if (j >= i) ata[i * k - i * (i + 1) / 2 + j] += q[e1 + e2];
                    }
                }
            }
        }
    }
}

// out[k * width + e] = the sum over rows k * chunk .. (k + 1) * chunk (in order) of
// partial[row * width + e].
extern "C" __global__ void sum_row_chunks(const double* partial, int nrow, int width, int chunk, double* out) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    int chunks = (nrow + chunk - 1) / chunk;
    if (i >= (long long)chunks * width) return;
    int k = (int)(i / width), e = (int)(i % width);
    int end = (k + 1) * chunk < nrow ? (k + 1) * chunk : nrow;
    double s = 0.0;
    for (int r = k * chunk; r < end; ++r) s += partial[(long long)r * width + e];
    out[i] = s;
}

// The fitted increment subtracted from every polarization of row r, channel c (rows used
// only): sum over sources of m_s (delta[2 s] + delta[2 s + 1] x_c), rounded to f32 once.
extern "C" __global__ void outlier_subtract(float* vis, const unsigned char* use_row, const int* bl_a,
                                            const int* bl_b, int nrow, int nt, int nc, int np, int ns,
                                            int n_ant, const double* amp, const double* delay,
                                            const double* smear, const double* freqs, const double* xs,
                                            const double* delta) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)nrow * nc) return;
    int r = (int)(i / nc), c = (int)(i % nc);
    if (!use_row[r]) return;
    UnitModel m{bl_a, bl_b, nt, nc, ns, n_ant, amp, delay, smear, freqs};
    double zr = 0.0, zi = 0.0;
    for (int s = 0; s < ns; ++s) {
        double2 u = m.at(r, s, c);
        double f = delta[2 * s] + delta[2 * s + 1] * xs[c];
        zr += u.x * f;
        zi += u.y * f;
    }
    float fr = (float)zr, fi = (float)zi;
    for (int p = 0; p < np; ++p) {
        long long j = (i * np + p) * 2;
        vis[j] -= fr;
        vis[j + 1] -= fi;
    }
}
