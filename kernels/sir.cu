// The scale-invariant rank operator (SIR, Offringa et al. 2012) along the lines of flag
// planes (CPU twins: compute::flagging::sir_line and trim_sir_line). One thread per line:
// line l of plane p starts at p * plane_size + l * line_step and steps by stride over n
// samples. A sample is flagged when some window holding it is at least (1 - eta) flagged:
// with P(j) the prefix sums of f - (1 - eta), when max_{b>j} P(b) - min_{a<=j} P(a) >= 0.
// scratch (one double per sample) holds those suffix maxima. Unless extend, each run of
// flags is then cut back to the span of the flags it started from.
extern "C" __global__ void sir_lines(const unsigned char* before, unsigned char* out, double* scratch, int nlines,
                                     int line_step, int stride, int n, double eta, int extend, int nplanes,
                                     long long plane_size) {
    long long id = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (id >= (long long)nlines * nplanes || n <= 0) return;
    long long base = (id / nlines) * plane_size + (long long)(id % nlines) * line_step;
    const unsigned char* f = before + base;
    unsigned char* o = out + base;
    double* top = scratch + base;
    double keep = 1.0 - eta;
    // P(j + 1) into top[j], in the same order of operations as the twin.
    double p = 0.0;
    for (int j = 0; j < n; ++j) {
        p = p + (f[(long long)j * stride] ? 1.0 : 0.0) - keep;
        top[(long long)j * stride] = p;
    }
    // Suffix maxima: top[j] = max_{b >= j + 1} P(b).
    double mx = -__longlong_as_double(0x7ff0000000000000ll);
    for (int j = n - 1; j >= 0; --j) {
        long long at = (long long)j * stride;
        mx = fmax(mx, top[at]);
        top[at] = mx;
    }
    // Prefix minima, recomputing P(j) as before.
    double mn = __longlong_as_double(0x7ff0000000000000ll);
    p = 0.0;
    for (int j = 0; j < n; ++j) {
        long long at = (long long)j * stride;
        mn = fmin(mn, p);
        o[at] = (f[at] || top[at] - mn >= -1e-12) ? 1 : 0;
        p = p + (f[at] ? 1.0 : 0.0) - keep;
    }
    if (extend) return;
    for (int i = 0; i < n;) {
        if (!o[(long long)i * stride]) {
            ++i;
            continue;
        }
        int j = i;
        while (j < n && o[(long long)j * stride]) ++j;
        int first = -1, last = -1;
        for (int k = i; k < j; ++k)
            if (f[(long long)k * stride]) {
                if (first < 0) first = k;
                last = k;
            }
        if (first >= 0) {
            for (int k = i; k < first; ++k) o[(long long)k * stride] = 0;
            for (int k = last + 1; k < j; ++k) o[(long long)k * stride] = 0;
        }
        i = j;
    }
}
