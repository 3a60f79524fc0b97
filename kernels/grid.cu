// Gridding one w-plane: each visibility (Stokes I: mean of the polarizations, weighted)
// is spread with the separable exponential-of-semicircle kernel (support W, taps from the
// host's formula phi(x) = exp(beta (sqrt(1 - x^2) - 1)), times its w-kernel weight) onto
// the plane. Threads of a block share one TILE x TILE tile of the grid in shared memory:
// visibilities are pre-sorted into tiles, and block b takes the segment
// seg_start[b]..seg_start[b+1] of tile seg_tile[b] (a crowded tile — the array's dense
// core — is split over several blocks, so no block holds up the launch), accumulates it in
// shared memory with shared atomics, then adds it to the global grid once per tile cell
// (no global atomic per kernel tap).
// CPU twin: contimg::compute::twins::grid_tiles (same taps; f64 accumulation order differs).
#define TILE 32
#define MAXW 16
// Warps of a block (1024 threads): each has its own slot of taps in shared memory.
#define GRID_WARPS_MAX 32

__device__ inline double es_phi(double x, double beta) {
    double t = 1.0 - x * x;
    return t > 0.0 ? exp(beta * (sqrt(t) - 1.0)) : 0.0;
}

extern "C" __global__ void grid_tiles(double2* grid, int ng, const double* u_px, const double* v_px, const double2* vis_w,
                                      const double* w_weight, const int* seg_tile, const int* seg_start, int tiles_x, int support,
                                      double beta) {
    __shared__ double2 tile[TILE + MAXW][TILE + MAXW];
    if (support > MAXW) return;  // the host never launches it so (kernel::MAX_SUPPORT)
    int k = seg_tile[blockIdx.x];
    int tx0 = (k % tiles_x) * TILE, ty0 = (k / tiles_x) * TILE;
    int span = TILE + support;
    for (int i = threadIdx.x; i < span * span; i += blockDim.x) tile[i / span][i % span] = make_double2(0.0, 0.0);
    __syncthreads();
    double half = support * 0.5;
    // A warp takes one visibility at a time and its lanes take the kernel's taps, lane l
    // the column dx = l mod W and every (32 / W)-th row from l / W, so no two lanes of a
    // warp add to the same cell; each warp of the block takes its own contiguous part of
    // the segment, far from the others' (neighbouring items are neighbouring channels of
    // one baseline, a cell or two apart). With a visibility per thread, a warp's threads
    // held ~32 such neighbours and contended for the same cells: f64 atomics on shared
    // memory are compare-and-swap loops. The separable taps (W column values, W row values
    // times the w weight) are computed once a visibility by the first W lanes and shared
    // through the warp's slot of `taps`. A block of one thread (the host shim) takes every
    // tap of every item itself.
    __shared__ double taps[GRID_WARPS_MAX][2][MAXW];
    const int lanes = blockDim.x < 32 ? (int)blockDim.x : 32;
    const int lane = threadIdx.x % lanes, warp = threadIdx.x / lanes, warps = blockDim.x / lanes;
    const int cols = support < lanes ? support : lanes, rows = lanes / cols;
    // Whole warps only (a partial last warp, or one past GRID_WARPS_MAX, takes no items),
    // so every lane of a working warp reaches each __syncwarp.
    if (warp < warps && warp < GRID_WARPS_MAX) {
        double* tx = taps[warp][0];
        double* ty = taps[warp][1];
        int seg0 = seg_start[blockIdx.x], seg1 = seg_start[blockIdx.x + 1];
        int per = (seg1 - seg0 + warps - 1) / warps;
        int j1 = min(seg1, seg0 + (warp + 1) * per);
        for (int j = seg0 + warp * per; j < j1; ++j) {
            double ww = w_weight[j];
            if (ww == 0.0) continue;  // outside this w-plane's kernel (the whole warp)
            double u = u_px[j], v = v_px[j];
            int x0 = (int)ceil(u - half), y0 = (int)ceil(v - half);
            double2 val = vis_w[j];
            for (int t = lane; t < support; t += lanes) {
                tx[t] = es_phi((x0 + t - u) / half, beta);
                ty[t] = es_phi((y0 + t - v) / half, beta) * ww;
            }
            __syncwarp();
            if (lane < rows * cols) {
                for (int dx = lane % cols; dx < support; dx += cols) {
                    int lx = x0 + dx - tx0;
                    if (lx < 0 || lx >= span) continue;
                    for (int dy = lane / cols; dy < support; dy += rows) {
                        int ly = y0 + dy - ty0;
                        if (ly < 0 || ly >= span) continue;
                        double kk = ty[dy] * tx[dx];
                        atomicAdd(&tile[ly][lx].x, val.x * kk);
                        atomicAdd(&tile[ly][lx].y, val.y * kk);
                    }
                }
            }
            __syncwarp();  // the taps are read before the next item overwrites them
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
