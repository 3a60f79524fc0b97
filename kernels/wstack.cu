// The w-stacked gridder and degridder around grid.cu and degrid.cu: preparing the
// visibilities of a block (Stokes I, rephased, flipped to w >= 0, in grid coordinates),
// sorting them into the gridding tiles, each plane's w-kernel weights, the centring sign
// of the transforms, and the w-screens between the planes and the image. The transforms
// themselves are cuFFT's (Z2Z, unnormalised, as rustfft's).
// CPU twins: contimg::compute::twins (grid_prep, tile_order, w_weights, checkerboard,
// wscreen_add, wscreen_fill, degrid_prep, degrid_finish), composed in twins::wstack and
// twins::unstack and checked against the CPU gridder and degridder.
#include "common.cuh"

// A w coordinate that no plane's kernel reaches (a rejected visibility).
#define CONTIMG_REJECT 1e300

__device__ inline double es_phi_w(double x, double beta) {
    double t = 1.0 - x * x;
    return t > 0.0 ? exp(beta * (sqrt(t) - 1.0)) : 0.0;
}

// n - 1 at image pixel (x, y) of an n x n image with square cells (rad).
__device__ inline double nm1(int x, int y, int n, double cell) {
    double c = (double)(n / 2);
    double l = (c - x) * cell, m = (y - c) * cell;
    double r2 = l * l + m * m;
    return r2 >= 1.0 ? -1.0 : -r2 / (1.0 + sqrt(1.0 - r2));
}

// One thread per (row, channel) of a chunk of packed rows: vis/weight [row][chan][pol],
// uvw [row][3] (m), dw [row] (m). Writes item out0 + i: grid coordinates (u_px, v_px),
// w (wavelengths, CONTIMG_REJECT when not gridded), the dirty value
// sum_p(w_p V_p) exp(-2 pi i dw nu / c) (conjugated for flipped rows) times fdirty[c], the
// PSF value sum_p(w_p) fpsf[c], and its tile key (-1 when not gridded; tile counts added).
extern "C" __global__ void grid_prep(const float2* vis, const float* weight, const double* uvw, const double* dw, const double* freqs,
                                     const double* fdirty, const double* fpsf, int nrow, int nchan, int npol, double scale,
                                     double centre, double uvmin2, double uvmax2, double limit, int support, int tiles_x,
                                     long long out0, double* u_px, double* v_px, double* w_lam, double2* val, double2* pval,
                                     int* key, int* counts) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)nrow * nchan) return;
    int r = (int)(i / nchan), c = (int)(i % nchan);
    long long o = out0 + i;
    double um = uvw[3 * r], vm = uvw[3 * r + 1], wm = uvw[3 * r + 2];
    double s = wm < 0.0 ? -1.0 : 1.0;
    double lam = freqs[c] / CONTIMG_C_M_S;
    double u = s * um * lam, v = s * vm * lam;
    double q = u * u + v * v;
    bool ok = !(q < uvmin2 || (uvmax2 > 0.0 && q > uvmax2)) && fabs(u * scale) < limit && fabs(v * scale) < limit;
    double vr = 0.0, vi = 0.0, ws = 0.0;
    for (int p = 0; p < npol; ++p) {
        float wt = weight[i * npol + p];
        if (wt > 0.0f) {
            float2 x = vis[i * npol + p];
            vr += (double)x.x * wt;
            vi += (double)x.y * wt;
            ws += wt;
        }
    }
    ok = ok && ws > 0.0;
    double sn, cs;
    sincos(-CONTIMG_TWO_PI * dw[r] * freqs[c] / CONTIMG_C_M_S, &sn, &cs);
    double ar = vr * cs - vi * sn, ai = vr * sn + vi * cs;
    if (s < 0.0) ai = -ai;
    double gu = centre - u * scale, gv = centre + v * scale;
    u_px[o] = gu;
    v_px[o] = gv;
    w_lam[o] = ok ? s * wm * lam : CONTIMG_REJECT;
    val[o] = make_double2(ar * fdirty[c], ai * fdirty[c]);
    pval[o] = make_double2(ws * fpsf[c], 0.0);
    int k = -1;
    if (ok) {
        double half = support * 0.5;
        int tx = min((int)fmax(ceil(gu - half), 0.0) / 32, tiles_x - 1);
        int ty = min((int)fmax(ceil(gv - half), 0.0) / 32, tiles_x - 1);
        k = ty * tiles_x + tx;
        atomicAdd(&counts[k], 1);
    }
    key[o] = k;
}

// Counting-sort scatter: item i goes to fill[key[i]]++ (fill starts as the tiles' starts).
// The order inside a tile is not fixed (f64 sums in any order).
extern "C" __global__ void tile_scatter(const int* key, long long n, const double* u_px, const double* v_px, const double* w_lam,
                                        const double2* val, const double2* pval, int* fill, double* su, double* sv, double* sw,
                                        double2* sval, double2* spval) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || key[i] < 0) return;
    int j = atomicAdd(&fill[key[i]], 1);
    su[j] = u_px[i];
    sv[j] = v_px[i];
    sw[j] = w_lam[i];
    sval[j] = val[i];
    spval[j] = pval[i];
}

// The w kernel of plane wp for every item: phi((w - wp) / halfwidth).
extern "C" __global__ void w_weights(const double* w_lam, long long n, double wp, double halfwidth, double beta, double* out) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = es_phi_w((w_lam[i] - wp) / halfwidth, beta);
}

// Multiplies cell (x, y) of an ng x ng grid by (-1)^(x + y) (centring for the FFT).
extern "C" __global__ void checkerboard(double2* g, int ng) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)ng * ng) return;
    int x = (int)(i % ng), y = (int)(i / ng);
    if ((x + y) & 1) g[i] = make_double2(-g[i].x, -g[i].y);
}

// After the forward transform: the central n x n cells (with the centring sign) times the
// plane's w-screen, real part added to img: img += Re(g exp(-2 pi i wp (n - 1))).
extern "C" __global__ void wscreen_add(const double2* plane, int ng, int n, double cell, double wp, double* img) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)n * n) return;
    int x = (int)(i % n), y = (int)(i / n);
    int lo = ng / 2 - n / 2, jx = lo + x, jy = lo + y;
    double2 g = plane[(long long)jy * ng + jx];
    double sg = ((jx + jy) & 1) ? -1.0 : 1.0;
    double sn, cs;
    sincos(CONTIMG_TWO_PI * wp * nm1(x, y, n, cell), &sn, &cs);
    img[i] += sg * (g.x * cs + g.y * sn);
}

// Before the inverse transform: the (zeroed) grid's central n x n cells set to
// pre * exp(+2 pi i wp (n - 1)), with the centring sign.
extern "C" __global__ void wscreen_fill(const double* pre, int n, double cell, double wp, int ng, double2* plane) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)n * n) return;
    double v = pre[i];
    if (v == 0.0) return;
    int x = (int)(i % n), y = (int)(i / n);
    int off = (ng - n) / 2, gx = off + x, gy = off + y;
    double sn, cs;
    sincos(CONTIMG_TWO_PI * wp * nm1(x, y, n, cell), &sn, &cs);
    double sg = ((gx + gy) & 1) ? -v : v;
    plane[(long long)gy * ng + gx] = make_double2(sg * cs, sg * sn);
}

// One thread per (row, channel) of packed rows: grid coordinates and w (wavelengths,
// CONTIMG_REJECT outside the uv cuts or where the kernel leaves the grid).
extern "C" __global__ void degrid_prep(const double* uvw, const double* freqs, int nrow, int nchan, double scale, double centre,
                                       double uvmin2, double uvmax2, int ng, int support, double* u_px, double* v_px, double* w_lam) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)nrow * nchan) return;
    int r = (int)(i / nchan), c = (int)(i % nchan);
    double um = uvw[3 * r], vm = uvw[3 * r + 1], wm = uvw[3 * r + 2];
    double s = wm < 0.0 ? -1.0 : 1.0;
    double lam = freqs[c] / CONTIMG_C_M_S;
    double u = s * um * lam, v = s * vm * lam;
    double q = u * u + v * v;
    double gu = centre - u * scale, gv = centre + v * scale;
    double half = support * 0.5;
    long long fx = (long long)ceil(gu - half), fy = (long long)ceil(gv - half);
    bool ok = !(q < uvmin2 || (uvmax2 > 0.0 && q > uvmax2)) && fx >= 0 && fy >= 0 && fx + support <= ng && fy + support <= ng;
    u_px[i] = gu;
    v_px[i] = gv;
    w_lam[i] = ok ? s * wm * lam : CONTIMG_REJECT;
}

// acc[i] += x[i] (the planes' predictions, summed in f64).
extern "C" __global__ void add_to(double2* acc, const double2* x, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) acc[i] = make_double2(acc[i].x + x[i].x, acc[i].y + x[i].y);
}

// The summed prediction of item (row, channel) conjugated back for flipped rows and
// rotated to the data's phasing (exp(+2 pi i dw nu / c)), as f32.
extern "C" __global__ void degrid_finish(const double2* acc, const double* uvw, const double* dw, const double* freqs, int nrow,
                                         int nchan, float2* out) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)nrow * nchan) return;
    int r = (int)(i / nchan), c = (int)(i % nchan);
    double2 v = acc[i];
    if (uvw[3 * r + 2] < 0.0) v.y = -v.y;
    double sn, cs;
    sincos(CONTIMG_TWO_PI * dw[r] * freqs[c] / CONTIMG_C_M_S, &sn, &cs);
    out[i] = make_float2((float)(v.x * cs - v.y * sn), (float)(v.x * sn + v.y * cs));
}
