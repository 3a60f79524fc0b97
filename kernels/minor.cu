// CLEAN's minor-cycle iterations over one Clark round's pixel list, in one block that runs
// every iteration (CPU twin: compute::minor::minor_cpu; bit-identical to it: products and
// sums are rounded one by one, never fused, in the twin's order).
//
// vals: T x len (term-major), the residual at each listed pixel, updated in place;
// xs, ys: the listed pixels; psf: the 2T - 1 PSFs, m x m each (m = 2n, peak at (n, n));
// hinv: T x T; rules: gain, limit, floor, mgain_stop, deep (NaN: none), peak;
// state[0]: the term-0 |flux| subtracted (in and out); done[0]: iterations run,
// done[1]: 1 when a stop rule ended the round, 0 when max_iter ran out;
// comp_k[i], comp_f[i * T + t]: iteration i's list index and fluxes.
// Launch: one block of a power-of-two number of threads (at most 1024).

#define MINOR_THREADS_MAX 1024

// The brighter of (va, ka) and (vb, kb); the lower index among equals (k = -1: none).
__device__ __forceinline__ bool minor_take(double va, long long ka, double vb, long long kb) {
    return fabs(vb) > fabs(va) || (fabs(vb) == fabs(va) && kb >= 0 && (ka < 0 || kb < ka));
}

__device__ __forceinline__ double minor_stop(const double* rules, double subtracted) {
    // deep is NaN for none: fmin then gives mgain, as the twin's Option does.
    return fmax(rules[2], fmin(rules[3], __dmul_rn(rules[4], subtracted)));
}

extern "C" __global__ void clark_minor(double* vals, long long len, int nt, const int* xs, const int* ys,
                                       const double* psf, long long m, long long n, const double* hinv,
                                       const double* rules, int max_iter, double* state, int* done,
                                       int* comp_k, double* comp_f) {
    __shared__ double best_v[MINOR_THREADS_MAX];
    __shared__ long long best_k[MINOR_THREADS_MAX];
    __shared__ double f[3];
    __shared__ int stop;
    __shared__ long long px, py;
    const unsigned int tid = threadIdx.x, step = blockDim.x;
    const long long plane = m * m;
    double subtracted = state[0];
    int it = 0;
    // This thread's brightest (first among equals) of its share of the list.
    double bv = 0.0;
    long long bk = -1;
    for (long long k = tid; k < len; k += step) {
        double v = vals[k];
        if (fabs(v) > fabs(bv)) {
            bv = v;
            bk = k;
        }
    }
    for (;;) {
        best_v[tid] = bv;
        best_k[tid] = bk;
        __syncthreads();
        for (unsigned int s = step / 2; s > 0; s >>= 1) {
            if (tid < s && minor_take(best_v[tid], best_k[tid], best_v[tid + s], best_k[tid + s])) {
                best_v[tid] = best_v[tid + s];
                best_k[tid] = best_k[tid + s];
            }
            __syncthreads();
        }
        if (tid == 0) {
            double v = best_k[0] < 0 ? 0.0 : best_v[0];
            long long j = best_k[0] < 0 ? 0 : best_k[0];
            stop = 0;
            if (it >= max_iter) {
                stop = 2;
            } else if (fabs(v) <= rules[1] || fabs(v) <= minor_stop(rules, subtracted) || v == 0.0 ||
                       fabs(v) > __dmul_rn(1.05, rules[5])) {
                stop = 1;
            } else {
                for (int t = 0; t < nt; ++t) {
                    double s = 0.0;
                    for (int u = 0; u < nt; ++u) s = __dadd_rn(s, __dmul_rn(hinv[t * nt + u], vals[u * len + j]));
                    f[t] = __dmul_rn(rules[0], s);
                    comp_f[(long long)it * nt + t] = f[t];
                }
                subtracted = __dadd_rn(subtracted, fabs(f[0]));
                comp_k[it] = (int)j;
                px = xs[j];
                py = ys[j];
                ++it;
            }
        }
        __syncthreads();
        if (stop) break;
        bv = 0.0;
        bk = -1;
        for (long long k = tid; k < len; k += step) {
            long long q = (ys[k] - py + n) * m + (xs[k] - px + n);
            for (int tp = nt - 1; tp >= 0; --tp) {
                double s = 0.0;
                for (int t = 0; t < nt; ++t) s = __dadd_rn(s, __dmul_rn(f[t], psf[(t + tp) * plane + q]));
                vals[tp * len + k] = __dadd_rn(vals[tp * len + k], -s);
            }
            double v = vals[k];
            if (fabs(v) > fabs(bv)) {
                bv = v;
                bk = k;
            }
        }
        // best_v is rewritten only after every thread has passed the barrier above.
    }
    if (tid == 0) {
        state[0] = subtracted;
        done[0] = it;
        done[1] = stop == 1;
    }
}
