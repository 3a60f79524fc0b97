// Rephasing: every visibility of row r, channel c times exp(-2 pi i dw[r] nu[c] / c).
// Layout [row][chan][pol] (float2 = re, im). One thread per (row, channel).
// CPU twin: contimg::gpu::twins::rephase.
#include "common.cuh"

extern "C" __global__ void rephase(float2* vis, const double* dw, const double* freqs, int nrow, int nchan, int npol) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)nrow * nchan) return;
    int r = (int)(i / nchan), c = (int)(i % nchan);
    double s, co;
    sincos(-CONTIMG_TWO_PI * dw[r] * freqs[c] / CONTIMG_C_M_S, &s, &co);
    float fs = (float)s, fc = (float)co;
    for (int p = 0; p < npol; ++p) {
        float2 v = vis[i * npol + p];
        vis[i * npol + p] = make_float2(v.x * fc - v.y * fs, v.x * fs + v.y * fc);
    }
}
