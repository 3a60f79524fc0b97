// Calibration sufficient statistics of one solution cell: for every baseline, over its
// samples (times x channels of the cell, laid out baseline-major: sample s of baseline b at
// b * per_bl + s), with weight w > 0:
//   a += w V conj(M),  b += w |M|^2,  c += w |V|^2,  n += 1
// (M already includes the antennas' pre-applied terms). One thread per baseline: no
// atomics, f64 sums; ranks then all-reduce the cells as the CPU path does.
// CPU twin: contimg::gpu::twins::cal_stats (calls calibrate::solve::CellStats::add).
extern "C" __global__ void cal_stats(const float2* vis, const double2* model, const float* weight, int n_bl, int per_bl,
                                     double2* a, double* b, double* c, double* n) {
    int bl = blockIdx.x * blockDim.x + threadIdx.x;
    if (bl >= n_bl) return;
    double2 sa = make_double2(0.0, 0.0);
    double sb = 0.0, sc = 0.0, sn = 0.0;
    for (int s = 0; s < per_bl; ++s) {
        long long i = (long long)bl * per_bl + s;
        double w = weight[i];
        if (w <= 0.0) continue;
        double vr = vis[i].x, vi = vis[i].y, mr = model[i].x, mi = model[i].y;
        // V conj(M) = (vr mr + vi mi) + i (vi mr - vr mi)
        sa.x += w * (vr * mr + vi * mi);
        sa.y += w * (vi * mr - vr * mi);
        sb += w * (mr * mr + mi * mi);
        sc += w * (vr * vr + vi * vi);
        sn += 1.0;
    }
    a[bl].x += sa.x;
    a[bl].y += sa.y;
    b[bl] += sb;
    c[bl] += sc;
    n[bl] += sn;
}
