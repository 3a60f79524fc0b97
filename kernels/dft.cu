// Direct prediction of point components (a direct Fourier sum): one thread a row and run of
// DFT_CHANNELS channels adds every component's visibility to each of its samples,
//   amp[(k nc + c) nt + t] exp(2 pi i nu_c tau) sinc(dnu tau),  tau = (u l + v m + w (n - 1) + dw) / c,
// row r being integration t = r % nt of its baseline; rows not in use are left as they are.
// Per component the delay, the channel average's sinc, the phasor at the run's first channel
// and its step (where the run's channels are equally spaced; else each channel's own) are
// computed once; the phasor then advances channel by channel by one complex product. In f64
// throughout (the phases reduced to their fraction of a turn before the sines), the sums
// rounded once to f32 and added to the samples.
// CPU twin: contimg::compute::dft::predict_points (its f32 phasor recurrence is within ~1e-6
// of the components' amplitude of this).
#include "common.cuh"

#define DFT_CHANNELS 8

// lmn: per component (l, m, n - 1).
extern "C" __global__ void predict_points(const double* uvw, const double* dw, const unsigned char* use_row, int nrow,
                                          int nt, const double* freqs, int nc, double dnu, const double* lmn, int npts,
                                          const float* amp, float2* out) {
    long long runs = (nc + DFT_CHANNELS - 1) / DFT_CHANNELS;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)nrow * runs) return;
    int r = (int)(i / runs), c0 = (int)(i % runs) * DFT_CHANNELS, t = r % nt;
    int len = min(DFT_CHANNELS, nc - c0);
    if (!use_row[r]) return;
    // Equally spaced channels (as compute::dft judges them): the phasor's recurrence.
    double step = len > 1 ? freqs[c0 + 1] - freqs[c0] : 0.0;
    bool even = true;
    for (int j = 1; j < len; ++j)
        even = even && fabs((freqs[c0 + j] - freqs[c0 + j - 1]) - step) <= 1e-9 * fabs(freqs[c0 + j]);
    double u = uvw[3 * r], v = uvw[3 * r + 1], w = uvw[3 * r + 2], d = dw[r];
    double re[DFT_CHANNELS], im[DFT_CHANNELS];
#pragma unroll
    for (int j = 0; j < DFT_CHANNELS; ++j) re[j] = im[j] = 0.0;
    for (int k = 0; k < npts; ++k) {
        double tau = (u * lmn[3 * k] + v * lmn[3 * k + 1] + w * lmn[3 * k + 2] + d) / CONTIMG_C_M_S;
        // The channel average: sin(pi x) / (pi x), x = dnu tau.
        double x = dnu * tau, a = 0.5 * CONTIMG_TWO_PI * x;
        double s = fabs(a) < 1e-4 ? 1.0 - a * a / 6.0 : sinpi(x) / a;
        double turns = freqs[c0] * tau, ps, pc, ss, sc;
        sincospi(2.0 * (turns - rint(turns)), &ps, &pc);
        turns = step * tau;
        sincospi(2.0 * (turns - rint(turns)), &ss, &sc);
        const float* ak = amp + ((long long)k * nc + c0) * nt + t;
#pragma unroll
        for (int j = 0; j < DFT_CHANNELS; ++j) {
            if (j < len) {
                if (j > 0) {
                    if (even) {
                        double next = pc * sc - ps * ss;
                        ps = pc * ss + ps * sc;
                        pc = next;
                    } else {
                        turns = freqs[c0 + j] * tau;
                        sincospi(2.0 * (turns - rint(turns)), &ps, &pc);
                    }
                }
                double f = (double)ak[(long long)j * nt] * s;
                re[j] += f * pc;
                im[j] += f * ps;
            }
        }
    }
#pragma unroll
    for (int j = 0; j < DFT_CHANNELS; ++j) {
        if (j < len) {
            long long o = (long long)r * nc + c0 + j;
            out[o].x += __double2float_rn(re[j]);
            out[o].y += __double2float_rn(im[j]);
        }
    }
}
