// Calibration apply: V[bl][t][c][p] / (g_a conj(g_b)), weights times |g_a g_b|^2; a missing
// gain (valid = 0) flags the sample (weight 0). Gains are per [t][antenna][chan][pol]
// (double2 = re, im), interpolated in time on the host. One thread per visibility sample.
// CPU twin: contimg::compute::twins::apply_gains.
extern "C" __global__ void apply_gains(float2* vis, float* weight, const double2* gains, const unsigned char* valid,
                                       const int* ant1, const int* ant2, int nbl, int nt, int nchan, int npol, int nant) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long n = (long long)nbl * nt * nchan * npol;
    if (i >= n) return;
    int p = (int)(i % npol);
    long long k = i / npol;
    int c = (int)(k % nchan); k /= nchan;
    int t = (int)(k % nt);
    int b = (int)(k / nt);
    long long ga = (((long long)t * nant + ant1[b]) * nchan + c) * npol + p;
    long long gb = (((long long)t * nant + ant2[b]) * nchan + c) * npol + p;
    if (!valid[ga] || !valid[gb]) { weight[i] = 0.0f; return; }
    double2 a = gains[ga], g = gains[gb];
    // d = g_a conj(g_b)
    double dr = a.x * g.x + a.y * g.y, di = a.y * g.x - a.x * g.y;
    double d2 = dr * dr + di * di;
    if (d2 <= 0.0) { weight[i] = 0.0f; return; }
    float2 v = vis[i];
    double vr = v.x, vi = v.y;
    vis[i] = make_float2((float)((vr * dr + vi * di) / d2), (float)((vi * dr - vr * di) / d2));
    weight[i] = (float)(weight[i] * d2);
}
