// Host shim for running contimg's kernels on the CPU (tests only: see kernels/host/run.cpp).
// A launch runs its blocks one after another; a block runs either as one thread (the
// block-wide loops, shared memory and atomics then reduce to plain sequential code: the
// kernel's logic and arithmetic against its twin) or as the device would launch it, one
// std::thread per CUDA thread with a barrier for __syncthreads (the block's cooperation:
// reductions, shared memory between barriers, atomics; a __syncthreads that not every
// thread reaches hangs, which the test runner's time limit turns into a failure). A warp
// is 32 consecutive threads with a barrier of its own for __syncwarp; lock-step execution
// is not modelled, so a kernel must not rely on it.
#pragma once
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

using std::fabs;
using std::fmax;
using std::fmin;
using std::isfinite;
using std::max;
using std::min;
using std::rint;

// CUDA's sine and cosine of pi x (the device's are exact at integers and half-integers;
// these round pi x first, ~1e-16 of the result for the |x| <= 1 the kernels pass).
inline void sincospi(double x, double* s, double* c) {
    double a = 3.141592653589793238462643383279503 * x;
    *s = std::sin(a);
    *c = std::cos(a);
}
inline double sinpi(double x) { return std::sin(3.141592653589793238462643383279503 * x); }

#define __global__
#define __device__
#define __forceinline__ inline
// One copy per kernel function, shared by the block's threads (blocks run one at a time).
#define __shared__ static

struct HostDim {
    unsigned int x = 0, y = 0, z = 0;
};
// Each CUDA thread is a std::thread with its own index; the block's index and size are
// set before its threads start.
static thread_local HostDim threadIdx;
static HostDim blockIdx, blockDim;
static std::barrier<>* host_block_barrier = nullptr;
// One barrier per warp of 32 threads (the last may be partial), for __syncwarp.
static std::vector<std::unique_ptr<std::barrier<>>>* host_warp_barriers = nullptr;
static std::mutex host_atomic_lock;

struct double2 {
    double x, y;
};
inline double2 make_double2(double x, double y) { return double2{x, y}; }
struct float2 {
    float x, y;
};
inline float2 make_float2(float x, float y) { return float2{x, y}; }
// Round to nearest, as the device's intrinsic (the host's default rounding mode).
inline float __double2float_rn(double x) { return (float)x; }

inline void __syncthreads() {
    if (host_block_barrier) host_block_barrier->arrive_and_wait();
}
// Every thread of the caller's warp must reach it (the full mask; a lane that does not
// hangs the run, as it is undefined on the device).
inline void __syncwarp(unsigned int = 0xffffffffu) {
    if (host_warp_barriers) (*host_warp_barriers)[threadIdx.x / 32]->arrive_and_wait();
}
// Atomics need the lock only while a block's threads run concurrently (a block of one
// thread, or blocks one after another, runs them in order).
template <class T> T atomicAdd(T* a, T v) {
    std::unique_lock<std::mutex> g(host_atomic_lock, std::defer_lock);
    if (host_block_barrier) g.lock();
    T old = *a;
    *a += v;
    return old;
}
template <class T> T atomicMax(T* a, T v) {
    std::unique_lock<std::mutex> g(host_atomic_lock, std::defer_lock);
    if (host_block_barrier) g.lock();
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

// Runs `kernel` for blocks 0..blocks-1 of `threads` concurrent threads each, as a launch
// of that block size.
template <class F> void run_blocks_threaded(long long blocks, unsigned int threads, F kernel) {
    blockDim.x = threads;
    std::barrier<> barrier((std::ptrdiff_t)threads);
    host_block_barrier = &barrier;
    std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
    for (unsigned int w = 0; w * 32 < threads; ++w)
        warp_barriers.push_back(std::make_unique<std::barrier<>>((std::ptrdiff_t)std::min(32u, threads - w * 32)));
    host_warp_barriers = &warp_barriers;
    for (long long b = 0; b < blocks; ++b) {
        blockIdx.x = (unsigned int)b;
        std::vector<std::thread> pool;
        pool.reserve(threads);
        for (unsigned int t = 0; t < threads; ++t)
            pool.emplace_back([&kernel, t] {
                threadIdx.x = t;
                kernel();
            });
        for (auto& th : pool) th.join();
    }
    host_block_barrier = nullptr;
    host_warp_barriers = nullptr;
    blockDim.x = 1;
}

// Round-to-nearest double products and sums (never fused with a neighbour: plain
// operations on the host, which compiles without FMA contraction).
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
