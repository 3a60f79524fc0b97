// Host shim for running contimg's kernels serially on the CPU (tests only: see
// kernels/host/run.cpp). Each block runs with one thread, so the block-wide loops, shared
// memory and atomics of a kernel reduce to plain sequential code: this checks a kernel's
// logic and arithmetic against its twin without a GPU; races need the device tests.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

using std::fabs;
using std::fmax;
using std::fmin;
using std::isfinite;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

struct HostDim {
    unsigned int x = 0, y = 0, z = 0;
};
static HostDim threadIdx, blockIdx, blockDim;

inline void __syncthreads() {}
template <class T> T atomicAdd(T* a, T v) {
    T old = *a;
    *a += v;
    return old;
}
template <class T> T atomicMax(T* a, T v) {
    T old = *a;
    if (v > old) *a = v;
    return old;
}
inline long long __double_as_longlong(double x) {
    long long b;
    std::memcpy(&b, &x, sizeof b);
    return b;
}
inline double __longlong_as_double(long long b) {
    double x;
    std::memcpy(&x, &b, sizeof x);
    return x;
}

// Runs `kernel` for blocks 0..blocks-1 of one thread each.
template <class F> void run_blocks(long long blocks, F kernel) {
    blockDim.x = 1;
    threadIdx.x = 0;
    for (long long b = 0; b < blocks; ++b) {
        blockIdx.x = (unsigned int)b;
        kernel();
    }
}

// Round-to-nearest double products and sums (never fused with a neighbour: plain
// operations on the host, which compiles without FMA contraction).
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
