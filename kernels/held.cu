// A group held in device memory for CLEAN's major cycles (compute::device_held): its rows
// gathered into a pass's packed order for the gridder and degridder, and a prediction
// subtracted from its visibilities in place.

// dst[k * stride + j] = src[rows[k] * stride + j] for the m rows listed (f32 elements).
extern "C" __global__ void gather_f32(const float* src, const int* rows, int m, int stride, float* dst) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)m * stride) return;
    long long k = i / stride, j = i % stride;
    dst[i] = src[(long long)rows[k] * stride + j];
}

// gather_f32 for f64 elements.
extern "C" __global__ void gather_f64(const double* src, const int* rows, int m, int stride, double* dst) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)m * stride) return;
    long long k = i / stride, j = i % stride;
    dst[i] = src[(long long)rows[k] * stride + j];
}

// Item (k, c) of a pass (k < m, c < nchan): its prediction pred[k * nchan + c] times
// scale * wrow[rows[k]] * wchan[c] subtracted from every polarization of row rows[k],
// channel c of the held visibilities (row x channel x polarization).
extern "C" __global__ void subtract_rows(float2* vis, const float2* pred, const int* rows, const float* wrow,
                                         const float* wchan, int m, int nchan, int npol, float scale) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)m * nchan) return;
    int k = (int)(i / nchan), c = (int)(i % nchan);
    long long r = rows[k];
    float f = scale * (wrow[r] * wchan[c]);
    float2 p = pred[i];
    float re = p.x * f, im = p.y * f;
    for (int q = 0; q < npol; ++q) {
        long long j = (r * nchan + c) * npol + q;
        vis[j].x -= re;
        vis[j].y -= im;
    }
}

// x[k * stride + col] = 0 for the m rows (the w of packed (u, v, w) rows, for a grid
// without the w-term).
extern "C" __global__ void zero_column(double* x, int m, int stride, int col) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k < m) x[k * stride + col] = 0.0;
}
