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
//   - streams run lazily: a launch, copy, memset, transform or stream-ordered free is
//     queued on its stream and runs only when the host must wait for it (a stream or
//     event synchronised, a copy down into pageable memory, a free of host or device
//     memory that the driver synchronises, an event or stream queried: NOT_READY, then
//     run). An event waited for by another stream runs the recording stream's work up to
//     it first. A missing synchronisation therefore shows as stale or early data (a
//     result read before its kernel ran, pinned host memory refilled before its copy
//     up ran, a buffer freed on one stream while another still uses it: a fault).
//     CONTIMG_EMULATOR_STREAMS=eager runs every call at once instead, as before. The
//     device reports memory pools, so cudarc allocates and frees in stream order as on a
//     real GPU. Not modelled: the device's arithmetic (fused multiply-adds), concurrent
//     scheduling of several streams (queued work runs one call at a time) and memory model;
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
#include <chrono>
#include <csignal>
#include <deque>
#include <functional>
#include <tuple>
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
    NOT_READY = 600,
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
// How lazily the streams ran: calls queued, the host's waits that had work to run (each a
// point where a GPU's queue could run dry while the host catches up), the most one of them
// ran, and the waits of one stream for another's event that ran the other's work.
static std::atomic<unsigned long long> calls_queued{0}, host_waits{0}, longest_drain{0}, waits_that_ran{0};

static void print_stats() {
    std::fprintf(stderr, "emulated CUDA device: %.1f MB up in %llu copies, %.1f MB down in %llu copies\n",
                 bytes_up.load() / 1e6, copies_up.load(), bytes_down.load() / 1e6, copies_down.load());
    std::fprintf(stderr,
                 "emulated CUDA device: %llu calls queued; %llu host waits ran work, at most %llu calls at once; "
                 "%llu stream waits ran another stream's work\n",
                 calls_queued.load(), host_waits.load(), longest_drain.load(), waits_that_ran.load());
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

// ---- streams: work queued, run when the host must wait for it ----

// Host memory from cuMemHostAlloc (start -> bytes): copies to and from it are truly
// asynchronous; copies from pageable memory are staged when called, copies down into it
// complete before the call returns (the driver's documented behaviour).
static std::map<uintptr_t, size_t> pinned_host;
static bool is_pinned(const void* p, size_t bytes) {
    std::lock_guard<std::mutex> g(emu_lock);
    auto it = pinned_host.upper_bound((uintptr_t)p);
    if (it == pinned_host.begin()) return false;
    --it;
    return (uintptr_t)p >= it->first && (uintptr_t)p + bytes <= it->first + it->second;
}

struct Stream {
    std::deque<std::pair<unsigned long long, std::function<void()>>> queue;
    unsigned long long queued = 0;  // the sequence number of the last call queued
    unsigned long long done = 0;    // of the last one run
};
static std::mutex queue_lock;          // the queues, their counts and the events
static std::recursive_mutex run_lock;  // running queued work: one call at a time
static Stream null_stream;             // the default stream, and the legacy handles
// Every stream made (never freed: an event may still name a destroyed one).
static std::vector<Stream*> all_streams{&null_stream};

static bool lazy_streams() {
    static const bool lazy = [] {
        const char* v = std::getenv("CONTIMG_EMULATOR_STREAMS");
        return !(v && std::string(v) == "eager");
    }();
    return lazy;
}
static Stream* stream_of(void* s) {
    uintptr_t h = (uintptr_t)s;
    return h <= 2 ? &null_stream : (Stream*)s;  // 0: default, 1: legacy, 2: per-thread
}

// Runs `s`'s queued calls up to and including number `upto`, on the calling thread. A
// call may run other streams' calls first (a wait for an event): always ones queued
// before it, so there is no cycle.
static thread_local int drain_depth = 0;  // > 0 inside a call a drain runs
static void drain(Stream* s, unsigned long long upto) {
    std::lock_guard<std::recursive_mutex> r(run_lock);
    bool from_host = drain_depth == 0;
    ++drain_depth;
    unsigned long long ran = 0;
    for (;; ++ran) {
        std::pair<unsigned long long, std::function<void()>> call;
        {
            std::lock_guard<std::mutex> g(queue_lock);
            if (s->done >= upto || s->queue.empty()) break;
            call = std::move(s->queue.front());
            s->queue.pop_front();
        }
        call.second();
        std::lock_guard<std::mutex> g(queue_lock);
        s->done = call.first;
    }
    --drain_depth;
    if (from_host && ran > 0) ++host_waits;
    unsigned long long most = longest_drain.load();
    while (ran > most && !longest_drain.compare_exchange_weak(most, ran)) {
    }
}
static unsigned long long queued_on(Stream* s) {
    std::lock_guard<std::mutex> g(queue_lock);
    return s->queued;
}
static void drain_all() {
    std::vector<std::pair<Stream*, unsigned long long>> upto;
    {
        std::lock_guard<std::mutex> g(queue_lock);
        for (Stream* s : all_streams) upto.emplace_back(s, s->queued);
    }
    for (auto& [s, n] : upto) drain(s, n);
}
// Queues `call` on `s` (run at once with CONTIMG_EMULATOR_STREAMS=eager); its number.
static unsigned long long enqueue(Stream* s, std::function<void()> call) {
    unsigned long long n;
    {
        std::lock_guard<std::mutex> g(queue_lock);
        n = ++s->queued;
        s->queue.emplace_back(n, std::move(call));
    }
    ++calls_queued;
    if (!lazy_streams()) drain(s, n);
    return n;
}

struct Event {
    Stream* stream = nullptr;  // of the last record (none: complete)
    unsigned long long at = 0; // its number there
    std::shared_ptr<double> when = std::make_shared<double>(0.0);  // ms, once it has run
};
static double now_ms() {
    using namespace std::chrono;
    return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}
// The stream and number an event waits for (null: nothing).
static std::pair<Stream*, unsigned long long> recorded(Event* e) {
    std::lock_guard<std::mutex> g(queue_lock);
    return {e->stream, e->at};
}
static bool complete(Event* e) {
    std::lock_guard<std::mutex> g(queue_lock);
    return !e->stream || e->stream->done >= e->at;
}

// ---- kernels: looked up by name, their parameters unpacked by type ----

// A launch's arguments copied when it is queued (the caller's may be gone when it runs).
template <class... A, size_t... I>
static std::function<void()> bind_launch(void (*k)(A...), void** params, std::index_sequence<I...>) {
    auto args = std::make_shared<std::tuple<std::remove_cv_t<std::remove_reference_t<A>>...>>(
        *static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(params[I])...);
    return [k, args] { std::apply(k, *args); };
}

struct Kernel {
    std::function<void()> (*bind)(void** params);
    bool block_wide;  // __syncthreads, shared memory: runs with a thread per CUDA thread
};

template <class... A> constexpr size_t arity(void (*)(A...)) { return sizeof...(A); }
#define KERNEL(name, wide) \
    { #name, Kernel{[](void** p) { return bind_launch(name, p, std::make_index_sequence<arity(name)>{}); }, wide} }

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
    case 115: *v = 1; return OK;  // memory pools, as a real GPU: allocations in stream order
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
API CUresult cuCtxSynchronize() {
    drain_all();
    return OK;
}
API CUresult cuMemGetInfo_v2(size_t* free_bytes, size_t* total) {
    std::lock_guard<std::mutex> g(emu_lock);
    *free_bytes = EMULATED_BYTES - allocated;
    *total = EMULATED_BYTES;
    return OK;
}

API CUresult cuStreamCreate(void** s, unsigned int) {
    Stream* st = new Stream();
    std::lock_guard<std::mutex> g(queue_lock);
    all_streams.push_back(st);
    *s = st;
    return OK;
}
// Work queued on a stream being destroyed still completes (as the driver's does).
API CUresult cuStreamDestroy_v2(void* s) {
    if (!s) return INVALID_HANDLE;
    drain(stream_of(s), queued_on(stream_of(s)));
    return OK;
}
API CUresult cuStreamSynchronize(void* s) {
    drain(stream_of(s), queued_on(stream_of(s)));
    return OK;
}
API CUresult cuStreamWaitEvent(void* s, void* e, unsigned int) {
    if (!e) return INVALID_HANDLE;
    auto [es, at] = recorded((Event*)e);
    if (es)
        enqueue(stream_of(s), [es = es, at = at] {
            unsigned long long before;
            {
                std::lock_guard<std::mutex> g(queue_lock);
                before = es->done;
            }
            if (before < at) {
                ++waits_that_ran;
                drain(es, at);
            }
        });
    return OK;
}
// Not ready while work is queued; the query runs it, so that a host polling makes progress.
API CUresult cuStreamQuery(void* s) {
    Stream* st = stream_of(s);
    unsigned long long n = queued_on(st);
    {
        std::lock_guard<std::mutex> g(queue_lock);
        if (st->done >= n) return OK;
    }
    drain(st, n);
    return NOT_READY;
}

API CUresult cuEventCreate(void** e, unsigned int) {
    *e = new Event();
    return OK;
}
API CUresult cuEventDestroy_v2(void* e) {
    delete (Event*)e;
    return OK;
}
API CUresult cuEventRecord(void* e, void* s) {
    if (!e) return INVALID_HANDLE;
    Event* ev = (Event*)e;
    Stream* st = stream_of(s);
    auto when = std::make_shared<double>(-1.0);
    unsigned long long n;
    {
        // Queued and noted under one lock: a wait on the event sees this record or an earlier.
        std::lock_guard<std::mutex> g(queue_lock);
        n = ++st->queued;
        st->queue.emplace_back(n, [when] { *when = now_ms(); });
        ev->stream = st;
        ev->at = n;
        ev->when = when;
    }
    if (!lazy_streams()) drain(st, n);
    return OK;
}
API CUresult cuEventQuery(void* e) {
    if (!e) return INVALID_HANDLE;
    if (complete((Event*)e)) return OK;
    auto [es, at] = recorded((Event*)e);
    drain(es, at);
    return NOT_READY;
}
API CUresult cuEventSynchronize(void* e) {
    if (!e) return INVALID_HANDLE;
    auto [es, at] = recorded((Event*)e);
    if (es) drain(es, at);
    return OK;
}
API CUresult cuEventElapsedTime(float* ms, void* a, void* b) {
    if (!a || !b) return INVALID_HANDLE;
    Event *ea = (Event*)a, *eb = (Event*)b;
    if (!recorded(ea).first || !recorded(eb).first) return INVALID_HANDLE;
    if (!complete(ea) || !complete(eb)) return NOT_READY;
    std::lock_guard<std::mutex> g(queue_lock);
    *ms = (float)(*eb->when - *ea->when);
    return OK;
}
API CUresult cuEventElapsedTime_v2(float* ms, void* a, void* b) { return cuEventElapsedTime(ms, a, b); }

API CUresult cuMemAlloc_v2(CUdeviceptr* p, size_t bytes) { return allocate((void**)p, bytes); }
// Memory at once (a stream-ordered allocation may be used by the stream from now on).
API CUresult cuMemAllocAsync(CUdeviceptr* p, size_t bytes, void*) { return allocate((void**)p, bytes); }
static bool allocated_here(CUdeviceptr p) {
    std::lock_guard<std::mutex> g(emu_lock);
    return allocations.count((uintptr_t)p) > 0;
}
// The driver synchronises before it frees: every stream's queued work runs first.
API CUresult cuMemFree_v2(CUdeviceptr p) {
    drain_all();
    return release((void*)p);
}
// Freed when the stream reaches it: work queued later on another stream that still uses
// the buffer then faults (a use after free on a device).
API CUresult cuMemFreeAsync(CUdeviceptr p, void* s) {
    if (!allocated_here(p)) return INVALID_VALUE;
    enqueue(stream_of(s), [p] {
        if (release((void*)p) != OK) fail("a stream-ordered free of memory already freed");
    });
    return OK;
}
API CUresult cuMemHostAlloc(void** p, size_t bytes, unsigned int) {
    *p = std::malloc(bytes ? bytes : 1);
    if (!*p) return OUT_OF_MEMORY;
    std::lock_guard<std::mutex> g(emu_lock);
    pinned_host[(uintptr_t)*p] = bytes ? bytes : 1;
    return OK;
}
API CUresult cuMemFreeHost(void* p) {
    drain_all();
    {
        std::lock_guard<std::mutex> g(emu_lock);
        if (!pinned_host.erase((uintptr_t)p)) return INVALID_VALUE;
    }
    std::free(p);
    return OK;
}
// Up from pinned memory: read when the copy runs. From pageable memory: staged now.
static CUresult copy_up(CUdeviceptr d, const void* h, size_t n, Stream* s, bool wait) {
    unsigned long long at;
    if (is_pinned(h, n)) {
        at = enqueue(s, [d, h, n] { copy((void*)d, h, n, true, false); });
    } else {
        auto staged = std::make_shared<std::vector<char>>((const char*)h, (const char*)h + n);
        at = enqueue(s, [d, staged, n] { copy((void*)d, staged->data(), n, true, false); });
    }
    if (wait) drain(s, at);
    return OK;
}
// Down into pinned memory: written when the copy runs. Into pageable memory: complete
// before the call returns.
static CUresult copy_down(void* h, CUdeviceptr d, size_t n, Stream* s, bool wait) {
    unsigned long long at = enqueue(s, [h, d, n] { copy(h, (void*)d, n, false, true); });
    if (wait || !is_pinned(h, n)) drain(s, at);
    return OK;
}
API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void* h, size_t n, void* s) { return copy_up(d, h, n, stream_of(s), false); }
API CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void* h, size_t n) { return copy_up(d, h, n, &null_stream, true); }
API CUresult cuMemcpyDtoHAsync_v2(void* h, CUdeviceptr d, size_t n, void* s) { return copy_down(h, d, n, stream_of(s), false); }
API CUresult cuMemcpyDtoH_v2(void* h, CUdeviceptr d, size_t n) { return copy_down(h, d, n, &null_stream, true); }
API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr a, CUdeviceptr b, size_t n, void* s) {
    enqueue(stream_of(s), [a, b, n] { copy((void*)a, (void*)b, n, true, true); });
    return OK;
}
API CUresult cuMemcpyDtoD_v2(CUdeviceptr a, CUdeviceptr b, size_t n) { return cuMemcpyDtoDAsync_v2(a, b, n, nullptr); }
API CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, void* s) {
    enqueue(stream_of(s), [d, v, n] {
        if (n && !inside((void*)d, n)) fail("a memset reaches outside its device allocation");
        std::memset((void*)d, v, n);
    });
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
                            unsigned int by, unsigned int bz, unsigned int smem, void* stream, void** params,
                            void** extra) {
    const Function* fn = (const Function*)f;
    if (!fn || !params || extra) return INVALID_VALUE;
    // The kernels are one-dimensional and use no dynamic shared memory.
    if (gx == 0 || bx == 0 || gy != 1 || gz != 1 || by != 1 || bz != 1 || smem != 0 || bx > 1024) return INVALID_VALUE;
    std::function<void()> kernel = fn->kernel->bind(params);
    bool wide = fn->kernel->block_wide;
    enqueue(stream_of(stream), [fn, kernel, wide, gx, bx] {
        std::lock_guard<std::mutex> g(emu_lock);
        running_kernel = fn->name.c_str();
        if (wide && bx > 1 && real_blocks()) {
            run_blocks_threaded(gx, bx, kernel);
        } else if (wide) {
            run_blocks(gx, kernel);
        } else {
            blockDim.x = bx;
            for (unsigned int b = 0; b < gx; ++b) {
                blockIdx.x = b;
                for (unsigned int t = 0; t < bx; ++t) {
                    threadIdx.x = t;
                    kernel();
                }
            }
            blockDim.x = 1;
        }
        running_kernel = nullptr;
    });
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
    case NOT_READY: *s = "CUDA_ERROR_NOT_READY"; break;
    case INVALID_HANDLE: *s = "CUDA_ERROR_INVALID_HANDLE"; break;
    default: *s = "CUDA_ERROR_UNKNOWN";
    }
    return OK;
}

// ---- cuFFT: 2-D double-complex plans, square ----

struct Plan {
    long long m;                    // plane size
    Stream* stream = &null_stream;  // cufftSetStream's
};
static std::map<int, Plan> plans;  // by handle
static int next_plan = 1;
enum : int { CUFFT_OK = 0, CUFFT_INVALID_PLAN = 1, CUFFT_INVALID_TYPE = 3, CUFFT_INVALID_VALUE = 4, CUFFT_INVALID_SIZE = 8 };

API int cufftPlan2d(int* plan, int nx, int ny, int type) {
    if (type != 105) return CUFFT_INVALID_TYPE;  // CUFFT_Z2Z only
    if (nx != ny || nx <= 0) return CUFFT_INVALID_SIZE;
    std::lock_guard<std::mutex> g(emu_lock);
    *plan = next_plan++;
    plans[*plan] = Plan{nx};
    return CUFFT_OK;
}
API int cufftSetStream(int plan, void* s) {
    std::lock_guard<std::mutex> g(emu_lock);
    auto it = plans.find(plan);
    if (it == plans.end()) return CUFFT_INVALID_PLAN;
    it->second.stream = stream_of(s);
    return CUFFT_OK;
}
API int cufftDestroy(int plan) {
    std::lock_guard<std::mutex> g(emu_lock);
    return plans.erase(plan) ? CUFFT_OK : CUFFT_INVALID_PLAN;
}
// Queued on the plan's stream, like a launch.
API int cufftExecZ2Z(int plan, double2* in, double2* out, int direction) {
    Plan p;
    {
        std::lock_guard<std::mutex> g(emu_lock);
        auto it = plans.find(plan);
        if (it == plans.end()) return CUFFT_INVALID_PLAN;
        p = it->second;
    }
    if (direction != -1 && direction != 1) return CUFFT_INVALID_VALUE;
    long long m = p.m;
    enqueue(p.stream, [in, out, m, direction] {
        size_t bytes = (size_t)(m * m) * sizeof(double2);
        if (!inside(in, bytes) || !inside(out, bytes)) fail("a cuFFT transform reaches outside its device allocation");
        if (out != in) std::memcpy(out, in, bytes);
        std::lock_guard<std::mutex> g(emu_lock);
        running_kernel = "cufftExecZ2Z";
        dft2(out, m, direction);
        running_kernel = nullptr;
    });
    return CUFFT_OK;
}
API int cufftGetVersion(int* v) {
    *v = 11000;
    return CUFFT_OK;
}
