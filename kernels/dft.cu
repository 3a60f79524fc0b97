// Direct prediction of point components (a direct Fourier sum): one thread a sample (row,
// channel) adds every component's visibility,
//   amp[(k nc + c) nt + t] exp(2 pi i nu_c tau) sinc(dnu tau),  tau = (u l + v m + w (n - 1) + dw) / c,
// row r being integration t = r % nt of its baseline; rows not in use are left as they are.
// In f64 throughout, the phase reduced to its fraction of a turn before the sine, the sum
// rounded once to f32 and added to the sample.
// CPU twin: contimg::compute::dft::predict_points (its f32 phasor recurrence is within ~1e-6
// of the components' amplitude of this).
#include "common.cuh"

// lmn: per component (l, m, n - 1).
extern "C" __global__ void predict_points(const double* uvw, const double* dw, const unsigned char* use_row, int nrow,
                                          int nt, const double* freqs, int nc, double dnu, const double* lmn, int npts,
                                          const float* amp, float2* out) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)nrow * nc) return;
    int r = (int)(i / nc), c = (int)(i % nc), t = r % nt;
    if (!use_row[r]) return;
    double u = uvw[3 * r], v = uvw[3 * r + 1], w = uvw[3 * r + 2], d = dw[r], nu = freqs[c];
    double re = 0.0, im = 0.0;
    for (int k = 0; k < npts; ++k) {
        double tau = (u * lmn[3 * k] + v * lmn[3 * k + 1] + w * lmn[3 * k + 2] + d) / CONTIMG_C_M_S;
        double turns = nu * tau;
        turns -= rint(turns);
        double sn, cs;
        sincospi(2.0 * turns, &sn, &cs);
        // The channel average: sin(pi x) / (pi x), x = dnu tau.
        double x = dnu * tau, a = 0.5 * CONTIMG_TWO_PI * x;
        double s = fabs(a) < 1e-4 ? 1.0 - a * a / 6.0 : sinpi(x) / a;
        double f = (double)amp[((long long)k * nc + c) * nt + t] * s;
        re += f * cs;
        im += f * sn;
    }
    out[i].x += __double2float_rn(re);
    out[i].y += __double2float_rn(im);
}
