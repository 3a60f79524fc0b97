// CLEAN's round convolution on the PSFs' m = 2n grid (CPU twin: compute::convolve::
// convolve_cpu): components placed at the grid's centre, transformed (cuFFT, with
// wstack.cu's checkerboard for the centring), multiplied by the PSFs' single-precision
// transforms and summed over terms, transformed back; the centre, normalised, is the image
// a round subtracts.

// Component k (pixel idx[k] of the n x n image, flux[k]) added at (x + n/2, y + n/2).
extern "C" __global__ void place_components(double2* g, int m, int n, const long long* idx, const double* flux,
                                            int count) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= count) return;
    long long i = idx[k];
    long long x = i % n, y = i / n;
    atomicAdd(&g[(y + n / 2) * (long long)m + x + n / 2].x, flux[k]);
}

// acc[i] += a[i] * p[i], p widened to double.
extern "C" __global__ void multiply_accumulate(double2* acc, const double2* a, const float2* p, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double pr = p[i].x, pi = p[i].y;
    double2 c = a[i];
    acc[i].x += c.x * pr - c.y * pi;
    acc[i].y += c.x * pi + c.y * pr;
}

// out[y][x] = Re g[y + n/2][x + n/2] x scale over the n x n image.
extern "C" __global__ void centre_real(const double2* g, int m, int n, double scale, double* out) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)n * n) return;
    long long x = i % n, y = i / n;
    out[i] = g[(y + n / 2) * (long long)m + x + n / 2].x * scale;
}

// g[i] = (psf[i], 0): a PSF as complex for its transform (the PSF's own transform, made
// once per image; CPU twin: compute::convolve::PsfHat::new).
extern "C" __global__ void real_to_complex(double2* g, const double* psf, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    g[i].x = psf[i];
    g[i].y = 0.0;
}

// out[2i], out[2i + 1] = g[i] rounded to single precision (to nearest, as the twin's casts).
extern "C" __global__ void narrow_complex(float* out, const double2* g, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[2 * i] = __double2float_rn(g[i].x);
    out[2 * i + 1] = __double2float_rn(g[i].y);
}
