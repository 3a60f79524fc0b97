// SumThreshold along lines of a plane (AOFlagger): each window of m samples whose mean
// exceeds thr is flagged; already-flagged samples count at thr. One thread per line: line
// l starts at l * line_step and steps by stride over n samples; planes are consecutive
// (plane_size samples each). Reads flags, writes new_flags (a copy of flags on entry).
// CPU twin: contimg::flag::algorithms::sumthreshold_line (same running f32 sum).
extern "C" __global__ void sumthreshold_lines(const float* values, const unsigned char* flags, unsigned char* new_flags,
                                              int nlines, int line_step, int stride, int n, int m, float thr,
                                              int nplanes, long long plane_size) {
    long long id = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (id >= (long long)nlines * nplanes || m <= 0 || m > n) return;
    long long base = (id / nlines) * plane_size + (long long)(id % nlines) * line_step;
    const float* v = values + base;
    const unsigned char* f = flags + base;
    unsigned char* out = new_flags + base;
    float sum = 0.0f;
    for (int i = 0; i < m; ++i) sum += f[(long long)i * stride] ? thr : v[(long long)i * stride];
    float limit = thr * (float)m;
    for (int s = 0; s + m <= n; ++s) {
        if (s > 0) {
            long long a = (long long)(s + m - 1) * stride, b = (long long)(s - 1) * stride;
            sum += (f[a] ? thr : v[a]) - (f[b] ? thr : v[b]);
        }
        if (sum > limit)
            for (int i = s; i < s + m; ++i) out[(long long)i * stride] = 1;
    }
}
