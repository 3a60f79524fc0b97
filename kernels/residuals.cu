// The flagger's residual planes (CPU twins: compute::flagging::plane_noise and
// normalise_planes): each plane's robust noise — the median and 1.4826 x the median absolute
// deviation of its residuals (value - background, f32) over the unmasked finite samples —
// exact order statistics by radix selection on the doubles' order keys, the residuals over
// that noise, and the values SumThreshold reads (cells zeroed, either sign). Planes are
// consecutive, plane_size samples each.

#define NOISE_THREADS 256

// A key whose unsigned order is the total order of the doubles (-0 before +0).
__device__ __forceinline__ unsigned long long order_key(double x) {
    unsigned long long b = (unsigned long long)__double_as_longlong(x);
    return (b >> 63) ? ~b : (b | 0x8000000000000000ull);
}

__device__ __forceinline__ double key_value(unsigned long long k) {
    unsigned long long b = (k >> 63) ? (k & 0x7fffffffffffffffull) : ~k;
    return __longlong_as_double((long long)b);
}

// Sample i's residual, and whether it enters the noise.
struct Residual {
    const float* v;
    const float* bg;
    const unsigned char* mask;
    __device__ bool operator()(int i, double* x) const {
        float r = v[i] - bg[i];
        *x = (double)r;
        return !mask[i] && isfinite(r);
    }
};

// Sample i's absolute deviation from the residuals' median.
struct Deviation {
    Residual r;
    double med;
    __device__ bool operator()(int i, double* x) const {
        double y;
        if (!r(i, &y)) return false;
        *x = fabs(y - med);
        return true;
    }
};

struct NoiseShared {
    unsigned int hist[256];
    unsigned long long prefix, max_below;
    unsigned int rank, count, below;
};

// The order key of the k-th smallest (0-based) of the included samples, the most
// significant byte first: each round counts the candidates' next byte and keeps the bin
// holding rank k. Every thread of the block calls it and gets the key.
template <class F>
__device__ unsigned long long select_key(const F& f, int n, unsigned int k, NoiseShared& s) {
    unsigned long long prefix = 0;
    for (int shift = 56; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += blockDim.x) s.hist[b] = 0;
        __syncthreads();
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            double x;
            if (!f(i, &x)) continue;
            unsigned long long key = order_key(x);
            if (shift < 56 && (key >> (shift + 8)) != (prefix >> (shift + 8))) continue;
            atomicAdd(&s.hist[(key >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned int below = 0;
            int d = 0;
            while (d < 255 && below + s.hist[d] <= k) below += s.hist[d++];
            s.prefix = prefix | ((unsigned long long)d << shift);
            s.rank = k - below;
        }
        __syncthreads();
        prefix = s.prefix;
        k = s.rank;
        __syncthreads();
    }
    return prefix;
}

// The median of the `count` (> 0) included samples as stats::median_mut takes it: the
// middle one, or for an even count the mean of the two middle ones.
template <class F>
__device__ double block_median(const F& f, int n, unsigned int count, NoiseShared& s) {
    unsigned int k = count / 2;
    unsigned long long mk = select_key(f, n, k, s);
    double m = key_value(mk);
    if (count % 2 == 1) return m;
    // The (k-1)-th: m itself when fewer than k samples lie below it, else the largest below.
    if (threadIdx.x == 0) {
        s.below = 0;
        s.max_below = 0;
    }
    __syncthreads();
    unsigned int below = 0;
    unsigned long long top = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        double x;
        if (!f(i, &x)) continue;
        unsigned long long key = order_key(x);
        if (key < mk) {
            ++below;
            top = key > top ? key : top;
        }
    }
    atomicAdd(&s.below, below);
    atomicMax(&s.max_below, top);
    __syncthreads();
    double lower = s.below < k ? m : key_value(s.max_below);
    __syncthreads();
    return 0.5 * (lower + m);
}

// One block of NOISE_THREADS per plane: sigma[p] = 1.4826 MAD (0 when no sample enters),
// used[p] = sigma[p] > 0.
extern "C" __global__ void plane_noise(const float* values, const float* bg, const unsigned char* mask,
                                       long long plane_size, int nplanes, double* sigma, unsigned char* used) {
    __shared__ NoiseShared s;
    int p = blockIdx.x;
    if (p >= nplanes) return;
    long long off = (long long)p * plane_size;
    int n = (int)plane_size;
    Residual r{values + off, bg + off, mask + off};
    if (threadIdx.x == 0) s.count = 0;
    __syncthreads();
    unsigned int c = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        double x;
        c += r(i, &x) ? 1u : 0u;
    }
    atomicAdd(&s.count, c);
    __syncthreads();
    unsigned int count = s.count;
    if (count == 0) {
        if (threadIdx.x == 0) {
            sigma[p] = 0.0;
            used[p] = 0;
        }
        return;
    }
    double med = block_median(r, n, count, s);
    Deviation d{r, med};
    double mad = block_median(d, n, count, s);
    if (threadIdx.x == 0) {
        double sg = 1.4826 * mad;
        sigma[p] = sg;
        used[p] = sg > 0.0 ? 1 : 0;
    }
}

// values[i] <- (value - background) / sigma of its plane, 0 on planes without noise.
extern "C" __global__ void normalise(float* values, const float* bg, const double* sigma, const unsigned char* used,
                                     long long plane_size, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    long long p = i / plane_size;
    values[i] = used[p] ? (float)((double)(values[i] - bg[i]) / sigma[p]) : 0.0f;
}

// SumThreshold's input: sign x the residual, 0 on the array's cells (one plane's worth).
extern "C" __global__ void threshold_values(const float* res, const unsigned char* cells, float sign,
                                            long long plane_size, long long n, float* out) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[i] = cells[i % plane_size] ? 0.0f : sign * res[i];
}

// a[i] |= b[i].
extern "C" __global__ void or_flags(unsigned char* a, const unsigned char* b, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    a[i] = a[i] | b[i];
}
