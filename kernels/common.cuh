// Shared definitions for contimg's kernels (included by NVRTC through the source list).
// Guarded: the sources are also compiled together, headers inlined (kernels/host/run.cpp).
#ifndef CONTIMG_COMMON_CUH
#define CONTIMG_COMMON_CUH
#define CONTIMG_TWO_PI 6.283185307179586476925286766559
#define CONTIMG_C_M_S 299792458.0
#define CONTIMG_PI 3.141592653589793238462643383279

// Point source s's model on baseline (a, b) at integration t, channel c, from the tables of
// compute::point_model::PointModel: amp [t][s][c] x sinc(pi (smear_b - smear_a)) x
// exp(2 pi i nu_c (delay_b - delay_a)), delay (s) and smear (cycles) [t][antenna][s].
__device__ inline double2 point_source(const double* amp, const double* delay, const double* smear,
                                       const double* freqs, int t, int a, int b, int s, int c, int ns,
                                       int nc, int n_ant) {
    long long ia = ((long long)t * n_ant + a) * ns + s;
    long long ib = ((long long)t * n_ant + b) * ns + s;
    double x = CONTIMG_PI * (smear[ib] - smear[ia]);
    double sm = fabs(x) < 1e-4 ? 1.0 - x * x / 6.0 : sin(x) / x;
    double ph = CONTIMG_TWO_PI * freqs[c] * (delay[ib] - delay[ia]);
    double am = amp[((long long)t * ns + s) * nc + c] * sm;
    return make_double2(am * cos(ph), am * sin(ph));
}
#endif
