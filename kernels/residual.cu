// CLEAN's residual images held on the device through a Clark minor cycle
// (compute::device_residual): each round's peak and pixel list are found there and its
// components' convolution (convolve.cu) is subtracted there, so only the peak, the list and
// the components cross the bus. Images are n x n f64, one a spectral term; `mask` holds one
// byte a pixel (1: the pixel may take components). Runs of RESIDUAL_RUN pixels make every sum and
// list come out in pixel order whatever the launch.
// CPU twin: imaging::clark's host steps (the same max, the same list in index order, the
// same subtraction).

#define RESIDUAL_RUN 1024

// partial[k] = the largest |res| over the eligible pixels of run k (0 where none).
extern "C" __global__ void absmax_runs(const double* res, const unsigned char* mask, long long n,
                                       double* partial) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long runs = (n + RESIDUAL_RUN - 1) / RESIDUAL_RUN;
    if (k >= runs) return;
    long long end = (k + 1) * RESIDUAL_RUN < n ? (k + 1) * RESIDUAL_RUN : n;
    double m = 0.0;
    for (long long i = k * RESIDUAL_RUN; i < end; ++i) {
        double a = fabs(res[i]);
        if (mask[i] && a > m) m = a;
    }
    partial[k] = m;
}

// counts[k] = how many eligible pixels of run k have |res| > limit.
extern "C" __global__ void count_above(const double* res, const unsigned char* mask, long long n,
                                       double limit, int* counts) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long runs = (n + RESIDUAL_RUN - 1) / RESIDUAL_RUN;
    if (k >= runs) return;
    long long end = (k + 1) * RESIDUAL_RUN < n ? (k + 1) * RESIDUAL_RUN : n;
    int c = 0;
    for (long long i = k * RESIDUAL_RUN; i < end; ++i)
        if (mask[i] && fabs(res[i]) > limit) ++c;
    counts[k] = c;
}

// Run k's eligible pixels with |res| > limit written in order from offsets[k] (the counts'
// exclusive prefix sums): their indices and values.
extern "C" __global__ void list_above(const double* res, const unsigned char* mask, long long n,
                                      double limit, const long long* offsets, int* idx,
                                      double* val) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long runs = (n + RESIDUAL_RUN - 1) / RESIDUAL_RUN;
    if (k >= runs) return;
    long long end = (k + 1) * RESIDUAL_RUN < n ? (k + 1) * RESIDUAL_RUN : n;
    long long o = offsets[k];
    for (long long i = k * RESIDUAL_RUN; i < end; ++i) {
        if (mask[i] && fabs(res[i]) > limit) {
            idx[o] = (int)i;
            val[o] = res[i];
            ++o;
        }
    }
}

// out[j] = res[idx[j]] for the k listed pixels.
extern "C" __global__ void gather_pixels(const double* res, const int* idx, int k, double* out) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j < k) out[j] = res[idx[j]];
}

// res[i] -= img[i]: a round's convolved components off a residual image.
extern "C" __global__ void subtract_image(double* res, const double* img, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) res[i] -= img[i];
}
