// The flagger's masked Gaussian background (flag::algorithms::masked_smooth, its CPU twin):
// a weighted local-constant or local-linear fit in a Gaussian window, separable — first
// along frequency on the unflagged samples, then along time on that surface carrying the
// summed weights. Planes are consecutive (plane samples each), row-major [t][f].

// Values and flags to f64 value and weight (0 for flagged samples).
extern "C" __global__ void smooth_prep(const float* values, const unsigned char* flags, long long n, double* v, double* w) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    v[i] = values[i];
    w[i] = flags[i] ? 0.0 : 1.0;
}

// One thread per output sample: sample i of line l of plane p, lines starting at
// l * line_step and stepping by stride over n samples. kern has 2h + 1 taps.
extern "C" __global__ void smooth_pass(const double* v, const double* w, int nlines, int line_step, int stride, int n,
                                       const double* kern, int h, int linear, int nplanes, long long plane, double* out_v,
                                       double* out_w) {
    long long id = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long per_plane = (long long)nlines * n;
    if (id >= per_plane * nplanes) return;
    long long p = id / per_plane;
    int l = (int)((id % per_plane) / n), i = (int)(id % n);
    long long base = p * plane + (long long)l * line_step;
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, t0 = 0.0, t1 = 0.0;
    for (int k = 0; k <= 2 * h; ++k) {
        int j = i + k - h;
        if (j < 0 || j >= n) continue;
        double ww = kern[k] * w[base + (long long)j * stride];
        if (ww == 0.0) continue;
        double x = (double)(k - h), y = v[base + (long long)j * stride];
        s0 += ww;
        s1 += ww * x;
        s2 += ww * x * x;
        t0 += ww * y;
        t1 += ww * x * y;
    }
    double det = s0 * s2 - s1 * s1;
    double r;
    if (s0 <= 0.0) r = 0.0;
    else if (linear && det > 1e-9 * s0 * fmax(s2, 1e-300) && s2 > 0.0) r = (s2 * t0 - s1 * t1) / det;
    else r = t0 / s0;
    out_v[base + (long long)i * stride] = r;
    out_w[base + (long long)i * stride] = s0;
}

// The surface back to the host as f32 (the CPU twin's `as f32`), halving the download.
extern "C" __global__ void smooth_narrow(const double* v, long long n, float* out) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = (float)v[i];
}
