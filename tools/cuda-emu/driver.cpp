// keel CUDA emulator: a stand-in libcuda.so.1 with the part of the CUDA driver API that
// cudarc's safe API uses. One device ("keel cuda-emu", compute capability 9.0) whose memory
// is host memory; streams are synchronous; kernels are host objects built by the stand-in
// NVRTC (nvrtc.cpp) and run block by block, every thread a fiber (keel_emu_device.h).
//
// What it checks beyond the kernels' arithmetic:
// * out-of-bounds accesses: every allocation ends 0-255 bytes before a PROT_NONE guard page
//   and the gap holds a canary checked after each launch; a kernel that faults (past the
//   guard, freed memory, a wild pointer) makes the launch return CUDA_ERROR_ILLEGAL_ADDRESS
//   with the faulting address described, as a GPU would, instead of crashing the process;
// * misaligned vector accesses and out-of-bounds indices into fixed-size arrays: kernel
//   objects are built with trapping sanitizers, and the trap (SIGILL) becomes
//   CUDA_ERROR_MISALIGNED_ADDRESS;
// * reads of unwritten memory: new allocations are filled with 0xFF bytes (NaN as f32);
// * launch configurations (block and grid limits, __launch_bounds__), memcpy/memset ranges
//   against live allocations, frees of unknown pointers, dynamic shared memory above 48 KiB
//   without cuFuncSetAttribute (as on a GPU), and out-of-memory (limit:
//   $KEEL_CUDA_EMU_MEM_MB, default 16384).
//
// Two knobs for measuring the host side of a GPU program (see README.md):
// * KEEL_CUDA_EMU_STATS=1 prints, at exit, how many kernels were launched, by name;
// * KEEL_CUDA_EMU_HOST_ONLY=1 checks each launch's configuration but does not run the
//   kernel, skips device-side copies and memsets, allocates without guard pages, and
//   answers every device-to-host copy with zeros: a program's speed is then that of its
//   host code alone (its results are meaningless).
#include <dlfcn.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <string>

namespace {

enum CUresult {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_INVALID_VALUE = 1,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_NOT_INITIALIZED = 3,
    CUDA_ERROR_INVALID_DEVICE = 101,
    CUDA_ERROR_INVALID_IMAGE = 200,
    CUDA_ERROR_INVALID_CONTEXT = 201,
    CUDA_ERROR_INVALID_HANDLE = 400,
    CUDA_ERROR_NOT_FOUND = 500,
    CUDA_ERROR_ILLEGAL_ADDRESS = 700,
    CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701,
    CUDA_ERROR_MISALIGNED_ADDRESS = 716,
    CUDA_ERROR_LAUNCH_FAILED = 719,
    CUDA_ERROR_NOT_SUPPORTED = 801,
};

struct EmuLaunch {  // mirrors keel_emu::Launch
    unsigned int grid[3];
    unsigned int block[3];
    unsigned int shared_bytes;
    int max_threads;
};
typedef int (*EntryFn)(const EmuLaunch*, void**, char*, unsigned long);

struct Function {
    EntryFn entry;
    std::string name;
    int max_dynamic_smem;  // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (default 48 KiB)
};
// A module hands out one CUfunction per kernel name, as the driver does, so an attribute
// set through one handle holds for every later launch of that kernel.
struct Module {
    void* dl;
    std::map<std::string, Function*> functions;
};
constexpr int kFuncAttrMaxDynamicSmem = 8;    // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
constexpr unsigned int kDefaultSmem = 49152;  // without the attribute, at most 48 KiB
constexpr unsigned int kOptinSmem = 232448;   // sm_90: 227 KiB per block with the attribute
struct Event { std::chrono::steady_clock::time_point t; };
struct Context { int device; };
struct Stream { int unused; };

struct Alloc {
    unsigned char* map;  // mapping start (page aligned)
    size_t map_len;      // data pages + one guard page
    size_t bytes;        // requested size; the data ends `slack` bytes before the guard
    size_t slack;        // canary bytes after the data (< 256)
};
constexpr size_t kPage = 4096;
constexpr unsigned char kCanary = 0xA5;

std::mutex g_mutex;                   // guards everything below and serializes launches
std::map<uintptr_t, Alloc> g_allocs;  // device pointer -> allocation
size_t g_used = 0;
bool g_init = false;
Context g_primary{0};
thread_local Context* t_current = nullptr;

size_t mem_limit() {
    static const size_t limit = [] {
        const char* e = std::getenv("KEEL_CUDA_EMU_MEM_MB");
        const long long mb = e && *e ? std::atoll(e) : 16384;
        return static_cast<size_t>(mb > 0 ? mb : 16384) << 20;
    }();
    return limit;
}

// Whether [p, p + n) lies inside one live allocation (caller holds g_mutex).
bool in_allocation(uintptr_t p, size_t n) {
    auto it = g_allocs.upper_bound(p);
    if (it == g_allocs.begin()) return false;
    --it;
    return p >= it->first && p + n <= it->first + it->second.bytes;
}

// Where `addr` lies relative to the nearest live allocations (caller holds g_mutex).
std::string describe(uintptr_t addr) {
    char buf[160];
    auto it = g_allocs.upper_bound(addr);
    if (it != g_allocs.begin()) {
        auto prev = std::prev(it);
        const uintptr_t end = prev->first + prev->second.bytes;
        if (addr < end) {
            std::snprintf(buf, sizeof buf, "0x%lx is byte %lu of a %lu-byte allocation", (unsigned long)addr,
                          (unsigned long)(addr - prev->first), (unsigned long)prev->second.bytes);
        } else {
            std::snprintf(buf, sizeof buf, "0x%lx is %lu bytes past the end of a %lu-byte allocation",
                          (unsigned long)addr, (unsigned long)(addr - end), (unsigned long)prev->second.bytes);
        }
        return buf;
    }
    std::snprintf(buf, sizeof buf, "0x%lx is below every allocation", (unsigned long)addr);
    return buf;
}

void emu_error(const char* what, const std::string& detail) {
    std::fprintf(stderr, "keel cuda-emu: %s: %s\n", what, detail.c_str());
}

// KEEL_CUDA_EMU_STATS=1: launches by kernel name, printed to stderr at exit.
struct LaunchStats {
    bool on = [] {
        const char* v = std::getenv("KEEL_CUDA_EMU_STATS");
        return v && std::strcmp(v, "1") == 0;
    }();
    std::map<std::string, unsigned long long> by_name;
    ~LaunchStats() {
        if (!on) return;
        unsigned long long total = 0;
        for (const auto& kv : by_name) total += kv.second;
        std::fprintf(stderr, "keel cuda-emu: %llu kernel launches\n", total);
        for (const auto& kv : by_name) std::fprintf(stderr, "  %10llu %s\n", kv.second, kv.first.c_str());
    }
};
LaunchStats g_stats;
void count_launch(const std::string& name) {
    if (g_stats.on) ++g_stats.by_name[name];
}
// KEEL_CUDA_EMU_HOST_ONLY=1: launches are checked but not run.
bool host_only() {
    static const bool on = [] {
        const char* v = std::getenv("KEEL_CUDA_EMU_HOST_ONLY");
        return v && std::strcmp(v, "1") == 0;
    }();
    return on;
}

CUresult alloc(uint64_t* dptr, size_t bytes) {
    if (!dptr) return CUDA_ERROR_INVALID_VALUE;
    std::lock_guard<std::mutex> g(g_mutex);
    if (!g_init) return CUDA_ERROR_NOT_INITIALIZED;
    if (bytes == 0) return CUDA_ERROR_INVALID_VALUE;
    if (g_used + bytes > mem_limit()) return CUDA_ERROR_OUT_OF_MEMORY;
    const size_t span = (bytes + 255) / 256 * 256;  // 256-byte aligned start, as cuMemAlloc
    if (host_only()) {
        // Host-only runs time the host code: no guard page, no fill, no mmap per allocation
        // (a GPU's stream-ordered pool allocates in about a microsecond).
        void* m = std::aligned_alloc(256, span);
        if (!m) return CUDA_ERROR_OUT_OF_MEMORY;
        g_allocs[reinterpret_cast<uintptr_t>(m)] = Alloc{static_cast<unsigned char*>(m), 0, bytes, 0};
        g_used += bytes;
        *dptr = reinterpret_cast<uint64_t>(m);
        return CUDA_SUCCESS;
    }
    const size_t data_pages = (span + kPage - 1) / kPage * kPage;
    const size_t map_len = data_pages + kPage;
    void* m = mmap(nullptr, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return CUDA_ERROR_OUT_OF_MEMORY;
    unsigned char* map = static_cast<unsigned char*>(m);
    mprotect(map + data_pages, kPage, PROT_NONE);
    unsigned char* start = map + data_pages - span;
    std::memset(start, 0xFF, bytes);
    std::memset(start + bytes, kCanary, span - bytes);
    g_allocs[reinterpret_cast<uintptr_t>(start)] = Alloc{map, map_len, bytes, span - bytes};
    g_used += bytes;
    *dptr = reinterpret_cast<uint64_t>(start);
    return CUDA_SUCCESS;
}

CUresult release(uint64_t dptr) {
    std::lock_guard<std::mutex> g(g_mutex);
    auto it = g_allocs.find(static_cast<uintptr_t>(dptr));
    if (it == g_allocs.end()) {
        emu_error("cuMemFree", "pointer is not a live allocation");
        return CUDA_ERROR_INVALID_VALUE;
    }
    g_used -= it->second.bytes;
    if (it->second.map_len == 0)
        std::free(it->second.map);  // a host-only allocation
    else
        munmap(it->second.map, it->second.map_len);
    g_allocs.erase(it);
    return CUDA_SUCCESS;
}

// After a launch: a changed canary byte is a write past the end of an allocation.
std::string check_canaries() {
    for (auto& [p, a] : g_allocs) {
        const unsigned char* tail = reinterpret_cast<const unsigned char*>(p) + a.bytes;
        for (size_t i = 0; i < a.slack; ++i) {
            if (tail[i] != kCanary) {
                std::memset(const_cast<unsigned char*>(tail), kCanary, a.slack);  // report once
                return "a write " + std::to_string(i) + " bytes after the end of a " + std::to_string(a.bytes) +
                       "-byte allocation";
            }
        }
    }
    return "";
}

// Faults inside a kernel jump back to cuLaunchKernel.
thread_local sigjmp_buf* t_fault_jump = nullptr;
thread_local uintptr_t t_fault_addr = 0;
struct sigaction g_old_segv, g_old_bus, g_old_ill;
void on_fault(int sig, siginfo_t* info, void*) {
    if (t_fault_jump) {
        t_fault_addr = reinterpret_cast<uintptr_t>(info->si_addr);
        siglongjmp(*t_fault_jump, sig);
    }
    // not ours: restore the previous handler and let the instruction fault again
    sigaction(sig, sig == SIGSEGV ? &g_old_segv : sig == SIGBUS ? &g_old_bus : &g_old_ill, nullptr);
}
// Each fiber stack has a guard page; an alternate signal stack lets the handler run even
// when a kernel overflows its stack.
void ensure_altstack() {
    static thread_local bool done = false;
    if (done) return;
    stack_t ss{};
    ss.ss_size = 64 * 1024;
    ss.ss_sp = std::malloc(ss.ss_size);
    ss.ss_flags = 0;
    if (ss.ss_sp && sigaltstack(&ss, nullptr) == 0) done = true;
}

// Copies with both device ranges checked (host ranges cannot be).
CUresult copy(void* dst, bool dst_dev, const void* src, bool src_dev, size_t n) {
    if (n == 0) return CUDA_SUCCESS;
    std::lock_guard<std::mutex> g(g_mutex);
    if ((dst_dev && !in_allocation(reinterpret_cast<uintptr_t>(dst), n)) ||
        (src_dev && !in_allocation(reinterpret_cast<uintptr_t>(src), n))) {
        emu_error("cuMemcpy", std::to_string(n) + " bytes outside a live allocation");
        return CUDA_ERROR_INVALID_VALUE;
    }
    std::memmove(dst, src, n);
    return CUDA_SUCCESS;
}

CUresult set8(uint64_t dptr, unsigned char v, size_t n) {
    if (n == 0) return CUDA_SUCCESS;
    std::lock_guard<std::mutex> g(g_mutex);
    if (!in_allocation(static_cast<uintptr_t>(dptr), n)) {
        emu_error("cuMemsetD8", std::to_string(n) + " bytes outside a live allocation");
        return CUDA_ERROR_INVALID_VALUE;
    }
    std::memset(reinterpret_cast<void*>(dptr), v, n);
    return CUDA_SUCCESS;
}

const char* error_name(int r) {
    switch (r) {
        case CUDA_SUCCESS: return "CUDA_SUCCESS";
        case CUDA_ERROR_INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
        case CUDA_ERROR_OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
        case CUDA_ERROR_NOT_INITIALIZED: return "CUDA_ERROR_NOT_INITIALIZED";
        case CUDA_ERROR_INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
        case CUDA_ERROR_INVALID_IMAGE: return "CUDA_ERROR_INVALID_IMAGE";
        case CUDA_ERROR_INVALID_CONTEXT: return "CUDA_ERROR_INVALID_CONTEXT";
        case CUDA_ERROR_INVALID_HANDLE: return "CUDA_ERROR_INVALID_HANDLE";
        case CUDA_ERROR_NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
        case CUDA_ERROR_ILLEGAL_ADDRESS: return "CUDA_ERROR_ILLEGAL_ADDRESS";
        case CUDA_ERROR_MISALIGNED_ADDRESS: return "CUDA_ERROR_MISALIGNED_ADDRESS";
        case CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: return "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES";
        case CUDA_ERROR_LAUNCH_FAILED: return "CUDA_ERROR_LAUNCH_FAILED";
        case CUDA_ERROR_NOT_SUPPORTED: return "CUDA_ERROR_NOT_SUPPORTED";
        default: return "CUDA_ERROR_UNKNOWN";
    }
}

}  // namespace

extern "C" {

typedef int CUdevice;
typedef uint64_t CUdeviceptr;
typedef Context* CUcontext;
typedef Stream* CUstream;
typedef Event* CUevent;
typedef Module* CUmodule;
typedef Function* CUfunction;

int cuGetErrorName(int r, const char** s) { if (!s) return CUDA_ERROR_INVALID_VALUE; *s = error_name(r); return 0; }
int cuGetErrorString(int r, const char** s) { return cuGetErrorName(r, s); }

int cuInit(unsigned int) { std::lock_guard<std::mutex> g(g_mutex); g_init = true; return 0; }
int cuDriverGetVersion(int* v) { if (!v) return CUDA_ERROR_INVALID_VALUE; *v = 13000; return 0; }
int cuDeviceGetCount(int* n) { if (!n) return CUDA_ERROR_INVALID_VALUE; *n = 1; return 0; }
int cuDeviceGet(CUdevice* d, int ordinal) {
    if (!d) return CUDA_ERROR_INVALID_VALUE;
    if (ordinal != 0) return CUDA_ERROR_INVALID_DEVICE;
    *d = 0;
    return 0;
}
int cuDeviceGetName(char* name, int len, CUdevice d) {
    if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    std::snprintf(name, static_cast<size_t>(len), "keel cuda-emu (CPU emulation, not a GPU)");
    return 0;
}
int cuDeviceGetAttribute(int* v, int attr, CUdevice d) {
    if (!v) return CUDA_ERROR_INVALID_VALUE;
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    switch (attr) {
        case 1: *v = 1024; break;     // MAX_THREADS_PER_BLOCK
        case 2: *v = 1024; break;     // MAX_BLOCK_DIM_X
        case 3: *v = 1024; break;     // MAX_BLOCK_DIM_Y
        case 4: *v = 64; break;       // MAX_BLOCK_DIM_Z
        case 5: *v = 2147483647; break;  // MAX_GRID_DIM_X
        case 6: case 7: *v = 65535; break;
        case 8: *v = 49152; break;    // MAX_SHARED_MEMORY_PER_BLOCK
        case 10: *v = 32; break;      // WARP_SIZE
        case 16: *v = 4; break;       // MULTIPROCESSOR_COUNT (small: fewer, fuller blocks)
        case 81: *v = 233472; break;  // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR (sm_90)
        case 97: *v = (int)kOptinSmem; break;  // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN (sm_90)
        case 75: *v = 9; break;       // COMPUTE_CAPABILITY_MAJOR
        case 76: *v = 0; break;       // COMPUTE_CAPABILITY_MINOR
        case 115: *v = 1; break;      // MEMORY_POOLS_SUPPORTED
        default: *v = 0; break;
    }
    return 0;
}
int cuDeviceTotalMem_v2(size_t* b, CUdevice) { if (!b) return CUDA_ERROR_INVALID_VALUE; *b = mem_limit(); return 0; }
int cuDevicePrimaryCtxRetain(CUcontext* c, CUdevice d) {
    if (!c) return CUDA_ERROR_INVALID_VALUE;
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    *c = &g_primary;
    return 0;
}
int cuDevicePrimaryCtxRelease_v2(CUdevice) { return 0; }
int cuCtxGetCurrent(CUcontext* c) { if (!c) return CUDA_ERROR_INVALID_VALUE; *c = t_current; return 0; }
int cuCtxSetCurrent(CUcontext c) { t_current = c; return 0; }
int cuCtxGetDevice(CUdevice* d) { if (!d) return CUDA_ERROR_INVALID_VALUE; *d = 0; return 0; }
int cuCtxSynchronize() { return 0; }
int cuMemGetInfo_v2(size_t* free_b, size_t* total) {
    if (!free_b || !total) return CUDA_ERROR_INVALID_VALUE;
    std::lock_guard<std::mutex> g(g_mutex);
    *total = mem_limit();
    *free_b = *total - g_used;
    return 0;
}

int cuStreamCreate(CUstream* s, unsigned int) { if (!s) return CUDA_ERROR_INVALID_VALUE; *s = new Stream{0}; return 0; }
int cuStreamCreateWithPriority(CUstream* s, unsigned int f, int) { return cuStreamCreate(s, f); }
int cuStreamDestroy_v2(CUstream s) { delete s; return 0; }
int cuStreamSynchronize(CUstream) { return 0; }
int cuStreamQuery(CUstream) { return 0; }
int cuStreamWaitEvent(CUstream, CUevent, unsigned int) { return 0; }

int cuEventCreate(CUevent* e, unsigned int) { if (!e) return CUDA_ERROR_INVALID_VALUE; *e = new Event{std::chrono::steady_clock::now()}; return 0; }
int cuEventRecord(CUevent e, CUstream) { if (!e) return CUDA_ERROR_INVALID_HANDLE; e->t = std::chrono::steady_clock::now(); return 0; }
int cuEventSynchronize(CUevent) { return 0; }
int cuEventQuery(CUevent) { return 0; }
int cuEventDestroy_v2(CUevent e) { delete e; return 0; }
int cuEventElapsedTime(float* ms, CUevent a, CUevent b) {
    if (!ms || !a || !b) return CUDA_ERROR_INVALID_VALUE;
    *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
    return 0;
}
int cuEventElapsedTime_v2(float* ms, CUevent a, CUevent b) { return cuEventElapsedTime(ms, a, b); }

int cuMemAlloc_v2(CUdeviceptr* p, size_t n) { return alloc(p, n); }
int cuMemAllocAsync(CUdeviceptr* p, size_t n, CUstream) { return alloc(p, n); }
// The device's default memory pool: allocations are not cached here (freed memory returns at
// once), but the release threshold keel sets is kept so that a test can read it back.
struct MemPool { unsigned long long release_threshold = 0; };
MemPool g_default_pool;
int cuDeviceGetDefaultMemPool(void** pool, CUdevice d) {
    if (!pool) return CUDA_ERROR_INVALID_VALUE;
    if (d != 0) return CUDA_ERROR_INVALID_DEVICE;
    *pool = &g_default_pool;
    return 0;
}
constexpr int kPoolAttrReleaseThreshold = 4;  // CU_MEMPOOL_ATTR_RELEASE_THRESHOLD (cuuint64_t)
int cuMemPoolSetAttribute(void* pool, int attr, void* value) {
    if (pool != &g_default_pool || !value) return CUDA_ERROR_INVALID_VALUE;
    if (attr == kPoolAttrReleaseThreshold) std::memcpy(&g_default_pool.release_threshold, value, 8);
    return 0;
}
int cuMemPoolGetAttribute(void* pool, int attr, void* value) {
    if (pool != &g_default_pool || !value) return CUDA_ERROR_INVALID_VALUE;
    if (attr != kPoolAttrReleaseThreshold) return CUDA_ERROR_NOT_SUPPORTED;
    std::memcpy(value, &g_default_pool.release_threshold, 8);
    return 0;
}
int cuMemPoolTrimTo(void* pool, size_t) { return pool == &g_default_pool ? 0 : CUDA_ERROR_INVALID_VALUE; }
int cuMemFree_v2(CUdeviceptr p) { return release(p); }
int cuMemFreeAsync(CUdeviceptr p, CUstream) { return release(p); }
int cuMemcpyHtoD_v2(CUdeviceptr d, const void* h, size_t n) { return copy(reinterpret_cast<void*>(d), true, h, false, n); }
int cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void* h, size_t n, CUstream) { return cuMemcpyHtoD_v2(d, h, n); }
int cuMemcpyDtoH_v2(void* h, CUdeviceptr d, size_t n) {
    // Host-only: kernels did not run, so the host reads zeros (finite, whatever it checks).
    if (host_only() && h) {
        std::memset(h, 0, n);
        return CUDA_SUCCESS;
    }
    return copy(h, false, reinterpret_cast<const void*>(d), true, n);
}
int cuMemcpyDtoHAsync_v2(void* h, CUdeviceptr d, size_t n, CUstream) { return cuMemcpyDtoH_v2(h, d, n); }
int cuMemcpyDtoD_v2(CUdeviceptr d, CUdeviceptr s, size_t n) {
    if (host_only()) return CUDA_SUCCESS;  // a copy on the device: GPU work
    return copy(reinterpret_cast<void*>(d), true, reinterpret_cast<const void*>(s), true, n);
}
int cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr s, size_t n, CUstream) { return cuMemcpyDtoD_v2(d, s, n); }
int cuMemsetD8_v2(CUdeviceptr d, unsigned char v, size_t n) { return set8(d, v, n); }
int cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, CUstream) {
    return host_only() ? CUDA_SUCCESS : set8(d, v, n);  // host-only: GPU work, skipped
}

int cuModuleLoadData(CUmodule* m, const void* image) {
    if (!m || !image) return CUDA_ERROR_INVALID_VALUE;
    const char* text = static_cast<const char*>(image);
    const char* tag = std::strstr(text, ".keel_emu_object ");
    if (!tag) {
        emu_error("cuModuleLoadData", "not a keel cuda-emu module (real PTX cannot run here)");
        return CUDA_ERROR_INVALID_IMAGE;
    }
    std::string path(tag + std::strlen(".keel_emu_object "));
    while (!path.empty() && (path.back() == '\n' || path.back() == '\r' || path.back() == ' ')) path.pop_back();
    void* dl = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        emu_error("cuModuleLoadData", dlerror());
        return CUDA_ERROR_INVALID_IMAGE;
    }
    *m = new Module{dl, {}};
    return 0;
}
int cuModuleUnload(CUmodule m) {
    if (!m) return CUDA_ERROR_INVALID_HANDLE;
    // The object stays mapped: cudarc may still hold functions of it on other threads.
    delete m;
    return 0;
}
int cuModuleGetFunction(CUfunction* f, CUmodule m, const char* name) {
    if (!f || !m || !name) return CUDA_ERROR_INVALID_VALUE;
    const std::string sym = std::string("keel_emu_launch_") + name;
    std::lock_guard<std::mutex> g(g_mutex);
    auto it = m->functions.find(name);
    if (it == m->functions.end()) {
        void* p = dlsym(m->dl, sym.c_str());
        if (!p) return CUDA_ERROR_NOT_FOUND;
        it = m->functions.emplace(name, new Function{reinterpret_cast<EntryFn>(p), name, (int)kDefaultSmem}).first;
    }
    *f = it->second;
    return 0;
}
int cuFuncGetAttribute(int* v, int attr, CUfunction f) {
    if (!v || !f) return CUDA_ERROR_INVALID_VALUE;
    *v = attr == kFuncAttrMaxDynamicSmem ? f->max_dynamic_smem : 0;
    return 0;
}
int cuFuncSetAttribute(CUfunction f, int attr, int value) {
    if (!f) return CUDA_ERROR_INVALID_HANDLE;
    if (attr == kFuncAttrMaxDynamicSmem) {
        if (value < 0 || (unsigned int)value > kOptinSmem) {
            emu_error("cuFuncSetAttribute", f->name + ": MAX_DYNAMIC_SHARED_SIZE_BYTES " + std::to_string(value) +
                                                " exceeds the device's " + std::to_string(kOptinSmem));
            return CUDA_ERROR_INVALID_VALUE;
        }
        f->max_dynamic_smem = value;
    }
    return 0;
}
int cuFuncSetCacheConfig(CUfunction, int) { return 0; }

int cuLaunchKernel(CUfunction f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx,
                   unsigned int by, unsigned int bz, unsigned int shared, CUstream, void** params,
                   void** extra) {
    if (!f) return CUDA_ERROR_INVALID_HANDLE;
    if (extra) return CUDA_ERROR_NOT_SUPPORTED;
    const unsigned long long threads = 1ull * bx * by * bz;
    if (gx == 0 || gy == 0 || gz == 0 || gy > 65535 || gz > 65535 || gx > 2147483647u || bx == 0 ||
        by == 0 || bz == 0 || bx > 1024 || by > 1024 || bz > 64 || threads > 1024) {
        emu_error("cuLaunchKernel", f->name + ": invalid grid (" + std::to_string(gx) + "," +
                                        std::to_string(gy) + "," + std::to_string(gz) + ") or block (" +
                                        std::to_string(bx) + "," + std::to_string(by) + "," +
                                        std::to_string(bz) + ")");
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (shared > (unsigned int)f->max_dynamic_smem) {
        emu_error("cuLaunchKernel", f->name + ": " + std::to_string(shared) +
                                        " bytes of dynamic shared memory exceed the kernel's limit of " +
                                        std::to_string(f->max_dynamic_smem) +
                                        " (more than 48 KiB needs cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES))");
        return CUDA_ERROR_INVALID_VALUE;
    }
    EmuLaunch l{{gx, gy, gz}, {bx, by, bz}, shared, 0};
    char err[512] = {0};
    std::lock_guard<std::mutex> g(g_mutex);
    count_launch(f->name);
    if (host_only()) return CUDA_SUCCESS;
    ensure_altstack();
    struct sigaction sa{};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_old_segv);
    sigaction(SIGBUS, &sa, &g_old_bus);
    sigaction(SIGILL, &sa, &g_old_ill);
    sigjmp_buf jump;
    int r;
    const int sig = sigsetjmp(jump, 1);
    if (sig == 0) {
        t_fault_jump = &jump;
        r = f->entry(&l, params, err, sizeof err);
    } else if (sig == SIGILL) {
        r = CUDA_ERROR_MISALIGNED_ADDRESS;
        std::snprintf(err, sizeof err,
                      "trap in the kernel: a misaligned vector access or an out-of-bounds index into a "
                      "fixed-size (shared or local) array");
    } else {
        r = CUDA_ERROR_ILLEGAL_ADDRESS;
        std::snprintf(err, sizeof err, "illegal address: %s%s", describe(t_fault_addr).c_str(),
                      shared ? "; or an index past the launch's dynamic shared memory, which also ends at a "
                               "guard page" : "");
    }
    t_fault_jump = nullptr;
    sigaction(SIGSEGV, &g_old_segv, nullptr);
    sigaction(SIGBUS, &g_old_bus, nullptr);
    sigaction(SIGILL, &g_old_ill, nullptr);
    if (r == 0) {
        const std::string bad = check_canaries();
        if (!bad.empty()) {
            r = CUDA_ERROR_ILLEGAL_ADDRESS;
            std::snprintf(err, sizeof err, "illegal address: %s", bad.c_str());
        }
    }
    if (r != 0) emu_error("cuLaunchKernel", f->name + ": " + err);
    return r;
}

}  // extern "C"
