// Gridding one w-plane: each visibility (Stokes I: mean of the polarizations, weighted)
// is spread with the separable exponential-of-semicircle kernel (support W, taps from the
// host's formula phi(x) = exp(beta (sqrt(1 - x^2) - 1)), times its w-kernel weight) onto
// the plane. Threads of a block share one TILE x TILE tile of the grid in shared memory:
// visibilities are pre-sorted into tiles, and block b takes the segment
// seg_start[b]..seg_start[b+1] of tile seg_tile[b] (a crowded tile — the array's dense
// core — is split over several blocks, so no block holds up the launch), accumulates it in
// shared memory with shared atomics, then adds it to the global grid once per tile cell
// (no global atomic per kernel tap).
// CPU twin: contimg::gpu::twins::grid_tiles (same taps; f64 accumulation order differs).
#define TILE 32
#define MAXW 16

__device__ inline double es_phi(double x, double beta) {
    double t = 1.0 - x * x;
    return t > 0.0 ? exp(beta * (sqrt(t) - 1.0)) : 0.0;
}

extern "C" __global__ void grid_tiles(double2* grid, int ng, const double* u_px, const double* v_px, const double2* vis_w,
                                      const double* w_weight, const int* seg_tile, const int* seg_start, int tiles_x, int support,
                                      double beta) {
    __shared__ double2 tile[TILE + MAXW][TILE + MAXW];
    int k = seg_tile[blockIdx.x];
    int tx0 = (k % tiles_x) * TILE, ty0 = (k / tiles_x) * TILE;
    int span = TILE + support;
    for (int i = threadIdx.x; i < span * span; i += blockDim.x) tile[i / span][i % span] = make_double2(0.0, 0.0);
    __syncthreads();
    double half = support * 0.5;
    for (int j = seg_start[blockIdx.x] + threadIdx.x; j < seg_start[blockIdx.x + 1]; j += blockDim.x) {
        double u = u_px[j], v = v_px[j];
        int x0 = (int)ceil(u - half), y0 = (int)ceil(v - half);
        double2 val = vis_w[j];
        double ww = w_weight[j];
        if (ww == 0.0) continue;  // outside this w-plane's kernel
        for (int dy = 0; dy < support; ++dy) {
            double ky = es_phi((y0 + dy - v) / half, beta) * ww;
            int ly = y0 + dy - ty0;
            for (int dx = 0; dx < support; ++dx) {
                double kk = ky * es_phi((x0 + dx - u) / half, beta);
                int lx = x0 + dx - tx0;
                if (lx < 0 || ly < 0 || lx >= span || ly >= span) continue;
                atomicAdd(&tile[ly][lx].x, val.x * kk);
                atomicAdd(&tile[ly][lx].y, val.y * kk);
            }
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < span * span; i += blockDim.x) {
        int gy = ty0 + i / span, gx = tx0 + i % span;
        double2 t = tile[i / span][i % span];
        if (gx < ng && gy < ng && (t.x != 0.0 || t.y != 0.0)) {
            // Tiles overlap by the support: neighbours may add to the same cell.
            atomicAdd(&grid[(long long)gy * ng + gx].x, t.x);
            atomicAdd(&grid[(long long)gy * ng + gx].y, t.y);
        }
    }
}
