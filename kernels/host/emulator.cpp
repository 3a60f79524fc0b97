// A CUDA driver and cuFFT emulated on the host (tests only), so that the device backend's
// Rust code — its allocations, copies, launches, chunking and fallbacks — runs where there
// is no GPU. Built as one shared library and installed as both libcuda.so and libcufft.so
// in a directory on LD_LIBRARY_PATH (scripts/emulated-gpu.sh); cudarc loads it in place of
// the driver. What it checks and what it does not:
//   - every kernel of kernels/*.cu runs through kernels/host/shim.h: the block-wide
//     kernels (grid_tiles, clark_minor, plane_noise) each block as one thread (or, with
//     CONTIMG_EMULATOR_BLOCKS=threads, one std::thread per CUDA thread of the launch's
//     block), the others thread by thread with the launch's real block and grid sizes;
//   - device memory is host memory ending at a guard page: a kernel or copy that runs
//     past the end of its buffer stops the process with the kernel's name; every copy and
//     memset is checked against the allocation it addresses; zero-byte allocations fail as
//     the driver's do;
//   - a function is looked up in the PTX its module was loaded from (NVRTC's own output);
//   - everything runs at once on the calling thread, in call order: streams and events
//     are accepted but impose nothing, so a missing synchronisation is NOT caught, nor is
//     the device's arithmetic (fused multiply-adds), scheduling or memory model;
//   - cuFFT's 2-D double transforms are a direct DFT (square planes only);
//   - CONTIMG_EMULATOR_DEVICES=N offers N devices (default 1), so that ranks spread over a
//     node's devices each open their own; each process has one pool of memory.
#include "shim.h"
#include "../residuals.cu"
#include "../sir.cu"
#include "../sumthreshold.cu"
#include "../background.cu"
#include "../minor.cu"
#include "../grid.cu"
#include "../degrid.cu"
#include "../convolve.cu"
#include "../wstack.cu"
#include "../dft.cu"
#include "../held.cu"
#include "../planes.cu"
#include "../outliers.cu"
#include "../residual.cu"
#include "../calstats.cu"
#include "dft2.h"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <sys/mman.h>
#include <type_traits>
#include <unistd.h>
#include <utility>

#define API extern "C" __attribute__((visibility("default")))

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
enum : int {
    OK = 0,
    INVALID_VALUE = 1,
    OUT_OF_MEMORY = 2,
    INVALID_HANDLE = 400,
    NOT_FOUND = 500,
    NOT_SUPPORTED = 801,
};

// ---- device memory: host pages, the buffer's end against a guard page ----

struct Allocation {
    char* map;         // the mapping, guard page included
    size_t map_bytes;  // its length
    size_t bytes;      // what was asked for
};
static std::mutex emu_lock;  // everything below, and every launch
static std::map<uintptr_t, Allocation> allocations;  // by start address
static const size_t EMULATED_BYTES = 16ull << 30;    // what the device reports having
static size_t allocated = 0;
static const char* running_kernel = nullptr;

static size_t page() { return (size_t)sysconf(_SC_PAGESIZE); }

// A buffer of `bytes` whose end (rounded up to 16 bytes, the widest element) is the start
// of an inaccessible page.
static CUresult allocate(void** out, size_t bytes) {
    if (bytes == 0) return INVALID_VALUE;
    std::lock_guard<std::mutex> g(emu_lock);
    if (allocated + bytes > EMULATED_BYTES) return OUT_OF_MEMORY;
    size_t rounded = (bytes + 15) / 16 * 16, p = page();
    size_t data_pages = (rounded + p - 1) / p, map_bytes = (data_pages + 1) * p;
    void* m = mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return OUT_OF_MEMORY;
    char* base = (char*)m;
    mprotect(base + data_pages * p, p, PROT_NONE);
    char* start = base + data_pages * p - rounded;
    // Not zero (as the device's are not): uninitialised reads show.
    std::memset(start, 0xA5, rounded);
    allocations[(uintptr_t)start] = Allocation{base, map_bytes, bytes};
    allocated += bytes;
    *out = start;
    return OK;
}

static CUresult release(void* ptr) {
    std::lock_guard<std::mutex> g(emu_lock);
    auto it = allocations.find((uintptr_t)ptr);
    if (it == allocations.end()) return INVALID_VALUE;
    allocated -= it->second.bytes;
    munmap(it->second.map, it->second.map_bytes);
    allocations.erase(it);
    return OK;
}

// Whether [ptr, ptr + bytes) lies inside one device allocation.
static bool inside(const void* ptr, size_t bytes) {
    std::lock_guard<std::mutex> g(emu_lock);
    auto it = allocations.upper_bound((uintptr_t)ptr);
    if (it == allocations.begin()) return false;
    --it;
    uintptr_t a = it->first, p = (uintptr_t)ptr;
    return p >= a && p + bytes <= a + it->second.bytes;
}

[[noreturn]] static void fail(const char* what) {
    std::fprintf(stderr, "emulated CUDA device: %s\n", what);
    std::abort();
}

static void on_fault(int) {
    const char* k = running_kernel;
    char msg[256];
    std::snprintf(msg, sizeof msg,
                  "emulated CUDA device: memory fault %s%s (an access past the end of a device buffer, "
                  "or through a bad pointer)\n",
                  k ? "in kernel " : "outside any kernel", k ? k : "");
    ssize_t r = write(2, msg, std::strlen(msg));
    (void)r;
    std::_Exit(134);
}

// Bytes copied up and down (CONTIMG_EMULATOR_STATS=1: printed to stderr at exit), so that
// a run's traffic across the bus can be counted.
static std::atomic<unsigned long long> bytes_up{0}, bytes_down{0}, copies_up{0}, copies_down{0};

static void print_stats() {
    std::fprintf(stderr, "emulated CUDA device: %.1f MB up in %llu copies, %.1f MB down in %llu copies\n",
                 bytes_up.load() / 1e6, copies_up.load(), bytes_down.load() / 1e6, copies_down.load());
}

static CUresult copy(void* dst, const void* src, size_t bytes, bool dst_dev, bool src_dev) {
    // 0: nothing; 1: totals at exit; 2: also each copy of 1 MB or more.
    static const int stats = [] {
        const char* v = std::getenv("CONTIMG_EMULATOR_STATS");
        int level = v ? std::atoi(v) : 0;
        if (level > 0) std::atexit(print_stats);
        return level;
    }();
    if (stats > 0 && dst_dev != src_dev) {
        (dst_dev ? bytes_up : bytes_down) += bytes;
        (dst_dev ? copies_up : copies_down) += 1;
        if (stats > 1 && bytes >= (1u << 20))
            std::fprintf(stderr, "emulated CUDA device: copy %s %.2f MB\n", dst_dev ? "up" : "down", bytes / 1e6);
    }
    if (bytes == 0) return OK;
    if ((dst_dev && !inside(dst, bytes)) || (src_dev && !inside(src, bytes)))
        fail("a copy reaches outside its device allocation");
    std::memcpy(dst, src, bytes);
    return OK;
}

// ---- kernels: looked up by name, their parameters unpacked by type ----

template <class... A, size_t... I>
static void call(void (*k)(A...), void** params, std::index_sequence<I...>) {
    k(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(params[I])...);
}

struct Kernel {
    void (*run)(void** params);
    bool block_wide;  // __syncthreads, shared memory: runs with a thread per CUDA thread
};

template <class... A> constexpr size_t arity(void (*)(A...)) { return sizeof...(A); }
#define KERNEL(name, wide) \
    { #name, Kernel{[](void** p) { call(name, p, std::make_index_sequence<arity(name)>{}); }, wide} }

static const std::map<std::string, Kernel>& kernels() {
    static const std::map<std::string, Kernel> k = {
        KERNEL(plane_noise, true),       KERNEL(normalise, false),
        KERNEL(threshold_values, false), KERNEL(or_flags, false),         KERNEL(sir_lines, false),
        KERNEL(sumthreshold_lines, false), KERNEL(smooth_prep, false),    KERNEL(smooth_pass, false),
        KERNEL(smooth_narrow, false),    KERNEL(clark_minor, true),       KERNEL(grid_tiles, true),
        KERNEL(degrid_points, false),    KERNEL(place_components, false), KERNEL(multiply_accumulate, false),
        KERNEL(centre_real, false),      KERNEL(real_to_complex, false),  KERNEL(narrow_complex, false),
        KERNEL(grid_prep, false),        KERNEL(tile_scatter, false),     KERNEL(w_weights, false),
        KERNEL(checkerboard, false),     KERNEL(wscreen_add, false),      KERNEL(wscreen_fill, false),
        KERNEL(degrid_prep, false),      KERNEL(add_to, false),           KERNEL(degrid_finish, false),
        KERNEL(predict_points, false),   KERNEL(gather_f32, false),       KERNEL(gather_f64, false),
        KERNEL(subtract_rows, false),    KERNEL(zero_column, false),       KERNEL(or_cells, false),
        KERNEL(clear_cells, false),      KERNEL(apply_found, false),      KERNEL(excess_partial, false),
        KERNEL(excess_reduce, false),
        KERNEL(count_planes, false),     KERNEL(flag_planes, false),      KERNEL(clip_sample, false),
        KERNEL(clip_above, false),       KERNEL(outlier_rows, false),     KERNEL(sum_row_chunks, false),
        KERNEL(outlier_subtract, false), KERNEL(absmax_runs, false),      KERNEL(count_above, false),
        KERNEL(list_above, false),       KERNEL(gather_pixels, false),    KERNEL(subtract_image, false),
        KERNEL(calstats_partial, false), KERNEL(calstats_cells, false),
    };
    return k;
}

// Block-wide kernels run with each block as one thread (their logic and arithmetic; the
// block's cooperation is what the host runs of compute::host_kernels check), or with
// CONTIMG_EMULATOR_BLOCKS=threads one std::thread per CUDA thread (slow: the minor cycle's
// 1024-thread barriers take milliseconds each on the host).
static bool real_blocks() {
    static const bool threads = [] {
        const char* v = std::getenv("CONTIMG_EMULATOR_BLOCKS");
        return v && std::string(v) == "threads";
    }();
    return threads;
}

struct Function {
    std::string name;
    const Kernel* kernel;
};
struct Module {
    std::string ptx;
};

// ---- the driver API cudarc calls ----

static int the_context = 1;
static thread_local void* current_context = nullptr;

API CUresult cuInit(unsigned int) {
    static bool once = [] {
        struct sigaction sa {};
        sa.sa_handler = on_fault;
        sigaction(SIGSEGV, &sa, nullptr);
        sigaction(SIGBUS, &sa, nullptr);
        return true;
    }();
    (void)once;
    return OK;
}
API CUresult cuDriverGetVersion(int* v) {
    *v = 12080;
    return OK;
}
// Devices the node has: CONTIMG_EMULATOR_DEVICES (1 to 16, default 1), so that ranks spread
// over a node's devices open their own ordinals. Each process emulates them all with one
// pool of memory; a rank uses one.
static int emulated_devices() {
    static const int n = [] {
        const char* v = std::getenv("CONTIMG_EMULATOR_DEVICES");
        int k = v ? std::atoi(v) : 1;
        return k < 1 ? 1 : (k > 16 ? 16 : k);
    }();
    return n;
}
API CUresult cuDeviceGetCount(int* n) {
    *n = emulated_devices();
    return OK;
}
API CUresult cuDeviceGet(int* d, int ordinal) {
    if (ordinal < 0 || ordinal >= emulated_devices()) return INVALID_VALUE;
    *d = ordinal;
    return OK;
}
API CUresult cuDeviceGetAttribute(int* v, int attribute, int) {
    switch (attribute) {
    case 75: *v = 9; return OK;   // compute capability major
    case 76: *v = 0; return OK;   // minor
    case 16: *v = 1; return OK;   // multiprocessors
    case 115: *v = 0; return OK;  // memory pools: no (cuMemAlloc / cuMemFree)
    case 33: case 34: case 50: *v = 0; return OK;  // PCI bus, device, domain
    default: return INVALID_VALUE;
    }
}
API CUresult cuDeviceGetName(char* name, int len, int) {
    std::snprintf(name, (size_t)len, "contimg emulated device");
    return OK;
}
API CUresult cuDeviceTotalMem_v2(size_t* bytes, int) {
    *bytes = EMULATED_BYTES;
    return OK;
}
API CUresult cuDevicePrimaryCtxRetain(void** ctx, int) {
    *ctx = &the_context;
    return OK;
}
API CUresult cuDevicePrimaryCtxRelease_v2(int) { return OK; }
API CUresult cuCtxSetCurrent(void* ctx) {
    current_context = ctx;
    return OK;
}
API CUresult cuCtxGetCurrent(void** ctx) {
    *ctx = current_context;
    return OK;
}
API CUresult cuCtxSynchronize() { return OK; }
API CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total) {
    std::lock_guard<std::mutex> g(emu_lock);
    *free_bytes = EMULATED_BYTES - allocated;
    *total = EMULATED_BYTES;
    return OK;
}

static std::atomic<int> stream_tokens{0};  // streams are created from several threads
API CUresult cuStreamCreate(void** s, unsigned int) {
    *s = new int(++stream_tokens);
    return OK;
}
API CUresult cuStreamDestroy_v2(void* s) {
    delete (int*)s;
    return OK;
}
API CUresult cuStreamSynchronize(void*) { return OK; }
API CUresult cuStreamWaitEvent(void*, void*, unsigned int) { return OK; }
API CUresult cuStreamQuery(void*) { return OK; }

API CUresult cuEventCreate(void** e, unsigned int) {
    *e = new int(0);
    return OK;
}
API CUresult cuEventDestroy_v2(void* e) {
    delete (int*)e;
    return OK;
}
API CUresult cuEventRecord(void*, void*) { return OK; }
API CUresult cuEventQuery(void*) { return OK; }
API CUresult cuEventSynchronize(void*) { return OK; }
API CUresult cuEventElapsedTime(float* ms, void*, void*) {
    *ms = 0.0f;
    return OK;
}
API CUresult cuEventElapsedTime_v2(float* ms, void* a, void* b) { return cuEventElapsedTime(ms, a, b); }

API CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t bytes) { return allocate((void**)p, bytes); }
API CUresult cuMemAllocAsync(CUdeviceptr* p, size_t bytes, void*) { return allocate((void**)p, bytes); }
API CUresult cuMemFree_v2(CUdeviceptr p) { return release((void*)p); }
API CUresult cuMemFreeAsync(CUdeviceptr p, void*) { return release((void*)p); }
API CUresult cuMemHostAlloc(void** p, size_t bytes, unsigned int) {
    *p = std::malloc(bytes ? bytes : 1);
    return *p ? OK : OUT_OF_MEMORY;
}
API CUresult cuMemFreeHost(void* p) {
    std::free(p);
    return OK;
}
API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void* h, size_t n, void*) { return copy((void*)d, h, n, true, false); }
API CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void* h, size_t n) { return copy((void*)d, h, n, true, false); }
API CUresult cuMemcpyDtoHAsync_v2(void* h, CUdeviceptr d, size_t n, void*) { return copy(h, (void*)d, n, false, true); }
API CUresult cuMemcpyDtoH_v2(void* h, CUdeviceptr d, size_t n) { return copy(h, (void*)d, n, false, true); }
API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr a, CUdeviceptr b, size_t n, void*) { return copy((void*)a, (void*)b, n, true, true); }
API CUresult cuMemcpyDtoD_v2(CUdeviceptr a, CUdeviceptr b, size_t n) { return copy((void*)a, (void*)b, n, true, true); }
API CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, void*) {
    if (n && !inside((void*)d, n)) fail("a memset reaches outside its device allocation");
    std::memset((void*)d, v, n);
    return OK;
}
API CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char v, size_t n) { return cuMemsetD8Async(d, v, n, nullptr); }

API CUresult cuModuleLoadData(void** m, const void* image) {
    *m = new Module{std::string((const char*)image)};
    return OK;
}
API CUresult cuModuleUnload(void* m) {
    delete (Module*)m;
    return OK;
}
API CUresult cuModuleGetFunction(void** f, void* m, const char* name) {
    const std::string& ptx = ((Module*)m)->ptx;
    std::string entry = std::string(".entry ") + name + "(";
    if (ptx.find(entry) == std::string::npos) return NOT_FOUND;
    auto it = kernels().find(name);
    if (it == kernels().end()) return NOT_FOUND;
    *f = new Function{name, &it->second};
    return OK;
}
API CUresult cuFuncGetAttribute(int* v, int, void*) {
    *v = 0;
    return OK;
}
API CUresult cuFuncSetAttribute(void*, int, int) { return OK; }
API CUresult cuFuncSetCacheConfig(void*, int) { return OK; }

API CUresult cuLaunchKernel(void* f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                            unsigned int by, unsigned int bz, unsigned int smem, void*, void** params, void** extra) {
    const Function* fn = (const Function*)f;
    if (!fn || !params || extra) return INVALID_VALUE;
    // The kernels are one-dimensional and use no dynamic shared memory.
    if (gx == 0 || bx == 0 || gy != 1 || gz != 1 || by != 1 || bz != 1 || smem != 0 || bx > 1024) return INVALID_VALUE;
    std::lock_guard<std::mutex> g(emu_lock);
    running_kernel = fn->name.c_str();
    void (*run)(void**) = fn->kernel->run;
    if (fn->kernel->block_wide && bx > 1 && real_blocks()) {
        run_blocks_threaded(gx, bx, [&] { run(params); });
    } else if (fn->kernel->block_wide) {
        run_blocks(gx, [&] { run(params); });
    } else {
        blockDim.x = bx;
        for (unsigned int b = 0; b < gx; ++b) {
            blockIdx.x = b;
            for (unsigned int t = 0; t < bx; ++t) {
                threadIdx.x = t;
                run(params);
            }
        }
        blockDim.x = 1;
    }
    running_kernel = nullptr;
    return OK;
}

API CUresult cuGetErrorString(CUresult e, const char** s) {
    static const char* names[] = {"no error", "invalid value", "out of memory"};
    *s = e >= 0 && e <= 2 ? names[e] : "emulated driver error";
    return OK;
}
API CUresult cuGetErrorName(CUresult e, const char** s) {
    switch (e) {
    case OK: *s = "CUDA_SUCCESS"; break;
    case INVALID_VALUE: *s = "CUDA_ERROR_INVALID_VALUE"; break;
    case OUT_OF_MEMORY: *s = "CUDA_ERROR_OUT_OF_MEMORY"; break;
    case NOT_FOUND: *s = "CUDA_ERROR_NOT_FOUND"; break;
    default: *s = "CUDA_ERROR_UNKNOWN";
    }
    return OK;
}

// ---- cuFFT: 2-D double-complex plans, square ----

static std::map<int, long long> plans;  // handle -> plane size
static int next_plan = 1;
enum : int { CUFFT_OK = 0, CUFFT_INVALID_PLAN = 1, CUFFT_INVALID_TYPE = 3, CUFFT_INVALID_VALUE = 4, CUFFT_INVALID_SIZE = 8 };

API int cufftPlan2d(int* plan, int nx, int ny, int type) {
    if (type != 105) return CUFFT_INVALID_TYPE;  // CUFFT_Z2Z only
    if (nx != ny || nx <= 0) return CUFFT_INVALID_SIZE;
    std::lock_guard<std::mutex> g(emu_lock);
    *plan = next_plan++;
    plans[*plan] = nx;
    return CUFFT_OK;
}
API int cufftSetStream(int plan, void*) {
    std::lock_guard<std::mutex> g(emu_lock);
    return plans.count(plan) ? CUFFT_OK : CUFFT_INVALID_PLAN;
}
API int cufftDestroy(int plan) {
    std::lock_guard<std::mutex> g(emu_lock);
    return plans.erase(plan) ? CUFFT_OK : CUFFT_INVALID_PLAN;
}
API int cufftExecZ2Z(int plan, double2* in, double2* out, int direction) {
    long long m;
    {
        std::lock_guard<std::mutex> g(emu_lock);
        auto it = plans.find(plan);
        if (it == plans.end()) return CUFFT_INVALID_PLAN;
        m = it->second;
    }
    if (direction != -1 && direction != 1) return CUFFT_INVALID_VALUE;
    size_t bytes = (size_t)(m * m) * sizeof(double2);
    if (!inside(in, bytes) || !inside(out, bytes)) fail("a cuFFT transform reaches outside its device allocation");
    if (out != in) std::memcpy(out, in, bytes);
    std::lock_guard<std::mutex> g(emu_lock);
    running_kernel = "cufftExecZ2Z";
    dft2(out, m, direction);
    running_kernel = nullptr;
    return CUFFT_OK;
}
API int cufftGetVersion(int* v) {
    *v = 11000;
    return CUFFT_OK;
}
