// Degridding one w-plane (the adjoint of grid.cu): one thread per visibility reads the
// support x support cells around (u_px, v_px) of the plane (already transformed and
// pre-corrected on the host) and sums them with the separable exponential-of-semicircle
// kernel, times the visibility's w-kernel weight; the host adds the planes and rotates
// back to the data's phasing. Reads only: no atomics.
// CPU twin: contimg::compute::twins::degrid_points (same taps and order of summation).
#define DEGRID_MAXW 16

__device__ inline double es_phi_d(double x, double beta) {
    double t = 1.0 - x * x;
    return t > 0.0 ? exp(beta * (sqrt(t) - 1.0)) : 0.0;
}

extern "C" __global__ void degrid_points(const double2* grid, int ng, const double* u_px, const double* v_px,
                                         const double* w_weight, int n, int support, double beta, double2* out) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) return;
    if (w_weight[j] == 0.0 || support > DEGRID_MAXW) {  // outside this w-plane's kernel
        out[j] = make_double2(0.0, 0.0);
        return;
    }
    double half = support * 0.5;
    double u = u_px[j], v = v_px[j];
    int x0 = (int)ceil(u - half), y0 = (int)ceil(v - half);
    // The column taps once (support <= DEGRID_MAXW, the host's kernel::MAX_SUPPORT), not
    // once a row: W + W exponentials a visibility instead of W^2 + W, the same values.
    double kx[DEGRID_MAXW];
    for (int dx = 0; dx < support; ++dx) kx[dx] = es_phi_d((x0 + dx - u) / half, beta);
    double2 sum = make_double2(0.0, 0.0);
    for (int dy = 0; dy < support; ++dy) {
        int gy = y0 + dy;
        if (gy < 0 || gy >= ng) continue;
        double ky = es_phi_d((gy - v) / half, beta);
        double2 row = make_double2(0.0, 0.0);
        for (int dx = 0; dx < support; ++dx) {
            int gx = x0 + dx;
            if (gx < 0 || gx >= ng) continue;
            double2 g = grid[(long long)gy * ng + gx];
            row.x += g.x * kx[dx];
            row.y += g.y * kx[dx];
        }
        sum.x += row.x * ky;
        sum.y += row.y * ky;
    }
    out[j] = make_double2(sum.x * w_weight[j], sum.y * w_weight[j]);
}
