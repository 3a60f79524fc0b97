// A group's flagging planes held on the device for the whole flagger (compute::device_planes):
// the cross-correlations' amplitudes and flags as consecutive nt x nf planes (baseline-major,
// polarization-minor), `plane` samples each, flags one byte a sample (0 or 1). The passes
// themselves run background.cu, residuals.cu and sumthreshold.cu on batches of these planes;
// the entries here join a pass to the held flags, sum the array's excess power, and run the
// steps after the passes (the array's cells, SIR's input, dead antennas' planes, the
// amplitude clip). CPU twins: flag::run_with's host steps (flag::planes::HostPlanes).

// flags[i] |= cells[i % plane] for the n samples: the array's cells on every plane.
extern "C" __global__ void or_cells(unsigned char* flags, const unsigned char* cells, long long plane,
                                    long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n && cells[i % plane]) flags[i] = 1;
}

// out[i] = flags[i] and not cells[i % plane]: the flags SIR dilates (the array's cells left
// out).
extern "C" __global__ void clear_cells(const unsigned char* flags, const unsigned char* cells,
                                       long long plane, long long n, unsigned char* out) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = flags[i] && !cells[i % plane] ? 1 : 0;
}

// A batch's flags written to the held ones: where `found` (SumThreshold's flags, or SIR's)
// on a usable plane (`used`, one a plane) outside the cells. `flags` starts at
// the batch's first plane.
extern "C" __global__ void apply_found(unsigned char* flags, const unsigned char* found,
                                       const unsigned char* used, const unsigned char* cells,
                                       long long plane, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    if (found[i] && used[i / plane] && !cells[i % plane]) flags[i] = 1;
}

// The array's excess power of a batch of normalised residuals, in two steps so that every
// run sums in the same order: excess_partial's thread (c, i) sums cell i over the batch's
// usable planes c * chunk .. (c + 1) * chunk, in order, into psum and pcount[c * plane + i]
// (min(r^2, clip2) - 1 of every finite residual whose sample was not flagged before the
// pass); excess_reduce's thread i adds the chunks' sums, in order, to sum and count[i].
extern "C" __global__ void excess_partial(const float* res, const unsigned char* flags,
                                          const unsigned char* used, int planes, int plane, int chunk,
                                          double clip2, double* psum, int* pcount) {
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    int chunks = (planes + chunk - 1) / chunk;
    if (k >= (long long)chunks * plane) return;
    int c = (int)(k / plane), i = (int)(k % plane);
    int end = (c + 1) * chunk < planes ? (c + 1) * chunk : planes;
    double s = 0.0;
    int n = 0;
    for (int q = c * chunk; q < end; ++q) {
        long long j = (long long)q * plane + i;
        float r = res[j];
        if (!used[q] || flags[j] || !isfinite(r)) continue;
        double rr = (double)r * (double)r;
        s += fmin(rr, clip2) - 1.0;
        n += 1;
    }
    psum[k] = s;
    pcount[k] = n;
}

extern "C" __global__ void excess_reduce(const double* psum, const int* pcount, int chunks, int plane,
                                         double* sum, int* count) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= plane) return;
    double s = 0.0;
    int n = 0;
    for (int c = 0; c < chunks; ++c) {
        s += psum[(long long)c * plane + i];
        n += pcount[(long long)c * plane + i];
    }
    sum[i] += s;
    count[i] += n;
}

// The flagged samples of each plane, added to counts (one a plane): a thread counts a run
// of up to 256 samples of one plane.
extern "C" __global__ void count_planes(const unsigned char* flags, long long plane, int planes,
                                        int* counts) {
    long long runs = (plane + 255) / 256;
    long long k = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= runs * planes) return;
    long long q = k / runs, start = (k % runs) * 256;
    long long end = start + 256 < plane ? start + 256 : plane;
    int c = 0;
    for (long long i = start; i < end; ++i) c += flags[q * plane + i] ? 1 : 0;
    if (c) atomicAdd(&counts[q], c);
}

// Every sample of the planes listed in `which` (one a plane) flagged.
extern "C" __global__ void flag_planes(unsigned char* flags, const unsigned char* which,
                                       long long plane, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n && which[i / plane]) flags[i] = 1;
}

// The amplitude clip's statistics subset of polarization p (of np): sample j < m is the
// polarization's sample i = j * stride (plane i / plane among its planes, offset i % plane),
// its amplitude, or -1 where it is flagged.
extern "C" __global__ void clip_sample(const float* amp, const unsigned char* flags, int p, int np,
                                       long long plane, long long stride, long long m, float* out) {
    long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= m) return;
    long long i = j * stride;
    long long s = ((i / plane) * np + p) * plane + i % plane;
    out[j] = flags[s] ? -1.0f : amp[s];
}

// The amplitude clip of polarization p (of np): its unflagged samples above `limit` flagged.
extern "C" __global__ void clip_above(const float* amp, unsigned char* flags, int p, int np,
                                      long long plane, long long n, float limit) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n || (i / plane) % np != p) return;
    if (!flags[i] && amp[i] > limit) flags[i] = 1;
}
