// keel CUDA emulator, device side: the CUDA built-ins keel's kernels use, for compiling a
// kernel source as host C++ (g++), plus a cooperative scheduler that runs every thread of a
// block as a fiber so that __syncthreads, warp shuffles and mma.sync behave as on a GPU.
//
// The fake NVRTC (nvrtc.cpp) force-includes this header in front of each kernel source and
// appends one `keel_emu_launch_<kernel>` entry point per `__global__` function; the fake
// driver (driver.cpp) calls that entry point from cuLaunchKernel. x86-64 Linux only.
#pragma once

#include <cmath>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/mman.h>
#include <type_traits>
#include <utility>
#include <vector>

#define KEEL_CUDA_EMU 1

// ---- CUDA keywords --------------------------------------------------------------------
#ifdef KEEL_EMU_SCAN
// The kernel scan keeps these two visible in the preprocessed text (see nvrtc.cpp).
#define __global__ KEEL_EMU_GLOBAL
#else
#define __global__
#define __launch_bounds__(...)
#endif
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __align__(n) __attribute__((aligned(n)))
// One block runs at a time (the driver serializes launches), so a function-local static
// is exactly one block's shared memory.
#define __shared__ static

// ---- vector types and built-in variables ----------------------------------------------
struct uint3 { unsigned int x, y, z; };
struct dim3 { unsigned int x, y, z; };
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) uint4 { unsigned int x, y, z, w; };
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

inline uint3 threadIdx;
inline uint3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;

// ---- intrinsics -------------------------------------------------------------------------
// Compiled with -ffp-contract=off, so each of these is one IEEE operation, rounded once.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __dsqrt_rn(double a) { return std::sqrt(a); }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline unsigned int __umulhi(unsigned int a, unsigned int b) {
    return (unsigned int)(((unsigned long long)a * b) >> 32);
}
template <class D, class S> inline D keel_emu_bits(S s) {
    static_assert(sizeof(D) == sizeof(S), "bit cast needs equal sizes");
    D d;
    std::memcpy(&d, &s, sizeof d);
    return d;
}
inline float __int_as_float(int v) { return keel_emu_bits<float>(v); }
inline float __uint_as_float(unsigned int v) { return keel_emu_bits<float>(v); }
inline int __float_as_int(float v) { return keel_emu_bits<int>(v); }
inline unsigned int __float_as_uint(float v) { return keel_emu_bits<unsigned int>(v); }
// Blocks run one after another on one OS thread: a plain read-modify-write is atomic, a
// fence has nothing to order, and every load sees the last store (no incoherent L1).
inline void __threadfence() {}
template <typename T> inline T __ldcg(const T* p) { return *p; }
// Blocks run one after another on one OS thread: a plain read-modify-write is atomic.
inline float atomicAdd(float* p, float v) { const float old = *p; *p = old + v; return old; }
inline int atomicAdd(int* p, int v) { const int old = *p; *p = old + v; return old; }
inline unsigned int atomicAdd(unsigned int* p, unsigned int v) { const unsigned int old = *p; *p = old + v; return old; }
inline double atomicAdd(double* p, double v) { const double old = *p; *p = old + v; return old; }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    const unsigned long long old = *p;
    *p = old + v;
    return old;
}
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long cmp, unsigned long long v) {
    const unsigned long long old = *p;
    if (old == cmp) *p = v;
    return old;
}

// f16 <-> f32 (cvt.f32.f16 / cvt.rn.f16.f32): GCC's _Float16 converts with round-to-nearest-even.
inline float keel_emu_f16_to_f32(unsigned short h) { return (float)keel_emu_bits<_Float16>(h); }
inline unsigned short keel_emu_f32_to_f16(float f) { return keel_emu_bits<unsigned short>((_Float16)f); }
// cvt.rna.tf32.f32: round to 10 mantissa bits, ties away from zero; NaN/inf unchanged.
inline unsigned int keel_emu_to_tf32(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7f800000u) == 0x7f800000u) return u;
    return (u + 0x1000u) & 0xffffe000u;
}
inline float keel_emu_bf16_to_f32(unsigned short h) { return __uint_as_float(((unsigned int)h) << 16); }

namespace keel_emu {

// ---- fibers: a minimal x86-64 context switch --------------------------------------------
extern "C" void keel_emu_swap(void** save_sp, void* next_sp);
asm(R"(
    .text
    .p2align 4
    .globl keel_emu_swap
    .hidden keel_emu_swap
    .type keel_emu_swap,@function
keel_emu_swap:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size keel_emu_swap, .-keel_emu_swap
)");

enum State { RUNNABLE, AT_BARRIER, AT_WARP, DONE, FAILED };
constexpr int kSlot = 64;           // bytes a lane can exchange in one warp collective
constexpr size_t kStack = 256 << 10;  // per-thread stack (plus a guard page)

// One cp.async: `bytes` copied from `src` to `dst` when its group completes, of which only
// the first `src_bytes` are read (the rest are zero-filled).
struct AsyncCopy {
    void* dst;
    const void* src;
    int bytes, src_bytes;
};

struct Fiber {
    void* sp;
    uint3 tid;
    int state;
    std::vector<AsyncCopy> copies;  // issued cp.async copies; [0, done) have completed
    std::vector<size_t> groups;     // end index in `copies` of each committed, pending group
    size_t done = 0;
};
struct Warp {
    unsigned char slot[32][kSlot];
    unsigned char snap[32][kSlot];
    unsigned int mask[32];  // the member mask each lane passed to the current collective
    unsigned int arrived;   // lanes that reached the collective when it opened
    int lanes;  // threads in this warp (the last warp of a block may be partial)
};

struct Launch {  // mirrors `EmuLaunch` in driver.cpp
    unsigned int grid[3];
    unsigned int block[3];
    unsigned int shared_bytes;
    int max_threads;  // __launch_bounds__, 0 when none
};

struct Sched {
    void* home_sp = nullptr;
    Fiber* fibers = nullptr;
    Warp* warps = nullptr;
    int nthreads = 0, cur = 0;
    unsigned char* stacks = nullptr;
    int stack_capacity = 0;
    void (*body)(void**) = nullptr;
    void** params = nullptr;
    unsigned char* dyn_smem = nullptr;  // this launch's dynamic shared memory (ends at a guard page)
    size_t dyn_bytes = 0;
    char error[320] = {0};  // set by `fail`: why the launch stops
};
inline Sched S;

[[noreturn]] inline void fiber_entry() {
    S.body(S.params);
    Fiber& f = S.fibers[S.cur];
    f.state = DONE;
    keel_emu_swap(&f.sp, S.home_sp);
    __builtin_trap();  // a finished fiber is never resumed
}

inline void* fresh_stack_frame(unsigned char* stack_top) {
    // Frame popped by keel_emu_swap: csr word, r15..r12, rbx, rbp, return address.
    unsigned long long* top = reinterpret_cast<unsigned long long*>(stack_top);
    top[-1] = 0;                                             // alignment padding
    top[-2] = reinterpret_cast<unsigned long long>(&fiber_entry);
    for (int i = 3; i <= 8; ++i) top[-i] = 0;                // rbp, rbx, r12..r15
    top[-9] = 0x1F80ull | (0x037Full << 32);                 // default MXCSR, x87 control word
    return top - 9;
}

inline bool reserve_stacks(int n) {
    if (n <= S.stack_capacity) return true;
    if (S.stacks) munmap(S.stacks, (size_t)S.stack_capacity * (kStack + 4096));
    const size_t per = kStack + 4096;
    void* m = mmap(nullptr, per * (size_t)n, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) { S.stacks = nullptr; S.stack_capacity = 0; return false; }
    S.stacks = static_cast<unsigned char*>(m);
    for (int i = 0; i < n; ++i) mprotect(S.stacks + per * i, 4096, PROT_NONE);  // guard pages
    S.stack_capacity = n;
    delete[] S.fibers;
    delete[] S.warps;
    S.fibers = new Fiber[n];
    S.warps = new Warp[(n + 31) / 32];
    return true;
}

inline void yield_to_scheduler(int state) {
    Fiber& f = S.fibers[S.cur];
    f.state = state;
    keel_emu_swap(&f.sp, S.home_sp);
}

// Stops the launch from device code with a message naming the block, warp and lane
// (CUDA_ERROR_LAUNCH_FAILED), for misuse a GPU would not report but would answer with
// undefined results, e.g. a shuffle from a lane that has exited.
[[noreturn, gnu::format(printf, 1, 2)]] inline void fail(const char* fmt, ...) {
    const int n = std::snprintf(S.error, sizeof S.error, "thread %d (warp %d, lane %d): ", S.cur, S.cur >> 5,
                                S.cur & 31);
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(S.error + n, sizeof S.error - (size_t)n, fmt, ap);
    va_end(ap);
    yield_to_scheduler(FAILED);
    __builtin_trap();  // a failed fiber is never resumed
}

// Runs one block; returns nullptr or a description of the failure.
inline const char* run_block() {
    const int n = S.nthreads;
    const size_t per = kStack + 4096;
    for (int i = 0; i < n; ++i) {
        Fiber& f = S.fibers[i];
        f.tid.x = i % blockDim.x;
        f.tid.y = (i / blockDim.x) % blockDim.y;
        f.tid.z = i / (blockDim.x * blockDim.y);
        f.state = RUNNABLE;
        f.sp = fresh_stack_frame(S.stacks + per * (i + 1));
        f.copies.clear();
        f.groups.clear();
        f.done = 0;
    }
    // Dynamic shared memory starts each block as NaN bytes, like fresh device memory.
    if (S.dyn_bytes) std::memset(S.dyn_smem, 0xFF, S.dyn_bytes);
    const int nwarps = (n + 31) / 32;
    for (int w = 0; w < nwarps; ++w) S.warps[w].lanes = (n - w * 32) < 32 ? (n - w * 32) : 32;
    // Warps run one at a time, each as far as it can go (to a __syncthreads, the end, or a
    // stuck warp collective), so one warp gets a whole barrier interval ahead of the others:
    // shared memory read without the barrier that should order it sees the other warps'
    // stores (and cp.async copies) missing. Odd blocks take warps and lanes in reverse order.
    const bool reverse = ((blockIdx.x + blockIdx.y + blockIdx.z) & 1u) != 0;
    for (;;) {
        for (int wj = 0; wj < nwarps; ++wj) {
            const int w = reverse ? nwarps - 1 - wj : wj;
            Warp& wp = S.warps[w];
            for (;;) {
                for (int j = 0; j < wp.lanes; ++j) {
                    const int i = w * 32 + (reverse ? wp.lanes - 1 - j : j);
                    if (S.fibers[i].state != RUNNABLE) continue;
                    S.cur = i;
                    threadIdx = S.fibers[i].tid;
                    keel_emu_swap(&S.home_sp, S.fibers[i].sp);
                    if (S.error[0]) return S.error;
                }
                // Every lane has finished or waits: release a warp collective all live lanes reached.
                int waiting = 0, live = 0;
                unsigned int arrived = 0;
                for (int l = 0; l < wp.lanes; ++l) {
                    const int st = S.fibers[w * 32 + l].state;
                    if (st != DONE) ++live;
                    if (st == AT_WARP) {
                        ++waiting;
                        arrived |= 1u << l;
                    }
                }
                if (waiting == 0 || waiting != live) break;
                wp.arrived = arrived;
                std::memcpy(wp.snap, wp.slot, sizeof wp.snap);
                for (int l = 0; l < wp.lanes; ++l) S.fibers[w * 32 + l].state = RUNNABLE;
            }
        }
        bool all_done = true, all_barrier = true;
        for (int i = 0; i < n; ++i) {
            const int st = S.fibers[i].state;
            if (st != DONE) all_done = false;
            if (st != DONE && st != AT_BARRIER) all_barrier = false;
        }
        if (all_done) return nullptr;
        if (all_barrier) {
            for (int i = 0; i < n; ++i)
                if (S.fibers[i].state == AT_BARRIER) S.fibers[i].state = RUNNABLE;
            continue;
        }
        return "deadlock: threads wait at different __syncthreads/warp collectives "
               "(divergent barrier or a warp collective not reached by every lane)";
    }
}

// Runs a whole grid. `body` calls the kernel with the launch's parameters.
inline int launch(const Launch* l, void** params, void (*body)(void**), char* err, size_t errlen) {
    const int n = (int)(l->block[0] * l->block[1] * l->block[2]);
    if (l->max_threads > 0 && n > l->max_threads) {
        snprintf(err, errlen, "block of %d threads exceeds __launch_bounds__(%d)", n, l->max_threads);
        return 701;  // CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES
    }
    if (!reserve_stacks(n)) {
        snprintf(err, errlen, "cannot map %d fiber stacks", n);
        return 2;
    }
    // Dynamic shared memory: its end touches a PROT_NONE page, so indexing past the size the
    // launch asked for faults (CUDA_ERROR_ILLEGAL_ADDRESS) instead of passing silently.
    const size_t dyn = ((size_t)l->shared_bytes + 15) & ~(size_t)15;
    const size_t dyn_map = ((dyn + 4095) & ~(size_t)4095) + 4096;
    unsigned char* dyn_base = nullptr;
    if (dyn) {
        void* m = mmap(nullptr, dyn_map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            snprintf(err, errlen, "cannot map %zu bytes of dynamic shared memory", dyn);
            return 2;
        }
        dyn_base = static_cast<unsigned char*>(m);
        mprotect(dyn_base + dyn_map - 4096, 4096, PROT_NONE);
    }
    S.dyn_smem = dyn ? dyn_base + dyn_map - 4096 - dyn : nullptr;
    S.dyn_bytes = dyn;
    struct Unmap {  // a fault longjmps past this and leaks the mapping: harmless, the launch failed
        unsigned char* p;
        size_t n;
        ~Unmap() { if (p) munmap(p, n); }
    } unmap{dyn_base, dyn_map};
    S.nthreads = n;
    S.error[0] = 0;
    S.body = body;
    S.params = params;
    blockDim = dim3{l->block[0], l->block[1], l->block[2]};
    gridDim = dim3{l->grid[0], l->grid[1], l->grid[2]};
    // Blocks run one after another, every other launch (of each module) in reverse order, so
    // a kernel that relies on lower-numbered blocks having finished (a race between blocks on
    // a GPU, where blocks run in no fixed order) sees their writes missing.
    // KEEL_CUDA_EMU_BLOCK_ORDER=forward or =reverse fixes the order for every launch.
    static unsigned long long launches = 0;
    static const char* order = std::getenv("KEEL_CUDA_EMU_BLOCK_ORDER");
    const bool backwards = order && std::strcmp(order, "reverse") == 0   ? true
                           : order && std::strcmp(order, "forward") == 0 ? false
                                                                          : (launches & 1u) != 0;
    ++launches;
    const unsigned long long total = (unsigned long long)l->grid[0] * l->grid[1] * l->grid[2];
    for (unsigned long long b = 0; b < total; ++b) {
        const unsigned long long q = backwards ? total - 1 - b : b;
        const unsigned x = (unsigned)(q % l->grid[0]);
        const unsigned y = (unsigned)((q / l->grid[0]) % l->grid[1]);
        const unsigned z = (unsigned)(q / ((unsigned long long)l->grid[0] * l->grid[1]));
        blockIdx = uint3{x, y, z};
        if (const char* e = run_block()) {
            snprintf(err, errlen, "block (%u,%u,%u): %s", x, y, z, e);
            return 719;  // CUDA_ERROR_LAUNCH_FAILED
        }
    }
    return 0;
}

// Calls `f` with its arguments read from cuLaunchKernel's `void** params`.
template <class... A, size_t... I>
inline void invoke_impl(void (*f)(A...), void** p, std::index_sequence<I...>) {
    f(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(p[I])...);
}
template <class... A>
inline void invoke(void (*f)(A...), void** p) {
    invoke_impl(f, p, std::index_sequence_for<A...>{});
}

// ---- warp collectives ---------------------------------------------------------------------
inline int lane_id() { return S.cur & 31; }
inline Warp& my_warp() { return S.warps[S.cur >> 5]; }

// Every lane of the warp deposits `n` bytes; returns the warp's snapshot once all live lanes
// arrived. As the CUDA rules for `*_sync` collectives require, the calling lane must be in
// `mask` and every lane that arrived must pass the same mask.
inline const unsigned char (*warp_exchange(const void* mine, size_t n, unsigned int mask))[kSlot] {
    const int lane = lane_id();
    if (!((mask >> lane) & 1u)) fail("a warp collective's mask 0x%08x does not name the calling lane", mask);
    my_warp().mask[lane] = mask;
    std::memcpy(my_warp().slot[lane], mine, n);
    yield_to_scheduler(AT_WARP);
    const Warp& w = my_warp();
    for (int l = 0; l < w.lanes; ++l)
        if (((w.arrived >> l) & 1u) && w.mask[l] != mask)
            fail("lanes of one warp collective pass different masks (0x%08x here, 0x%08x on lane %d)", mask,
                 w.mask[l], l);
    return w.snap;
}

// An `.aligned` warp instruction (mma.sync, ldmatrix): all 32 lanes must execute it.
inline const unsigned char (*warp_exchange_aligned(const void* mine, size_t n, const char* what))[kSlot] {
    const unsigned char (*snap)[kSlot] = warp_exchange(mine, n, 0xffffffffu);
    if (my_warp().arrived != 0xffffffffu)
        fail("%s needs all 32 lanes of the warp, but only lanes 0x%08x reached it (a partial warp, or "
             "lanes that exited)", what, my_warp().arrived);
    return snap;
}

// The value lane `src` passed. Reading a lane that is outside the mask, has exited, or does
// not exist (a partial warp) gives an undefined value on a GPU; here it stops the launch.
template <class T>
inline T shfl_from(T v, int src, unsigned int mask) {
    static_assert(sizeof(T) <= kSlot, "shuffle operand too large");
    const unsigned char (*snap)[kSlot] = warp_exchange(&v, sizeof v, mask);
    const Warp& w = my_warp();
    if (src == lane_id()) return v;
    if (src < 0 || src >= w.lanes)
        fail("a shuffle reads lane %d, which does not exist (a warp of %d threads); its value is undefined",
             src, w.lanes);
    if (!((mask >> src) & 1u))
        fail("a shuffle reads lane %d, which is not in its mask 0x%08x; its value is undefined", src, mask);
    if (!((w.arrived >> src) & 1u))
        fail("a shuffle reads lane %d, which has exited; its value is undefined", src);
    T r;
    std::memcpy(&r, snap[src], sizeof r);
    return r;
}

}  // namespace keel_emu

inline void __syncthreads() { keel_emu::yield_to_scheduler(keel_emu::AT_BARRIER); }
inline void __syncwarp(unsigned m = 0xffffffffu) { char c = 0; keel_emu::warp_exchange(&c, 1, m); }
template <class T> inline T __shfl_xor_sync(unsigned m, T v, int mask, int width = 32) {
    const int lane = keel_emu::lane_id();
    const int src = (lane & ~(width - 1)) | ((lane ^ mask) & (width - 1));
    return keel_emu::shfl_from(v, src, m);
}
template <class T> inline T __shfl_down_sync(unsigned m, T v, unsigned d, int width = 32) {
    const int lane = keel_emu::lane_id();
    const int in_seg = (lane & (width - 1)) + (int)d;
    return keel_emu::shfl_from(v, in_seg < width ? lane + (int)d : lane, m);
}
template <class T> inline T __shfl_sync(unsigned m, T v, int src, int width = 32) {
    const int lane = keel_emu::lane_id();
    return keel_emu::shfl_from(v, (lane & ~(width - 1)) + (src & (width - 1)), m);
}

// mma.sync.aligned.m16n8k{8,16}.row.col.f32.{tf32,f16,bf16}.f32 with the PTX ISA fragment
// layouts (g = lane / 4, t = lane % 4):
//   A 16xK: a0 (g, t | 2t..2t+1), a1 (g+8, same), a2 (g, t+4 | 2t+8..), a3 (g+8, t+4 | 2t+8..)
//   B Kx8:  b0 (t | 2t..2t+1, g), b1 (t+4 | 2t+8.., g)
//   C 16x8: c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1)
// Products are exact in double and summed in k order; the result is rounded to f32 once.
namespace keel_emu {
enum MmaKind { MMA_TF32, MMA_F16, MMA_BF16 };
inline float mma_elem(unsigned int reg, int half, MmaKind kind) {
    if (kind == MMA_TF32) return __uint_as_float(reg & 0xffffe000u);  // the hardware reads 19 bits
    const unsigned short h = (unsigned short)(half ? reg >> 16 : reg & 0xffffu);
    return kind == MMA_F16 ? keel_emu_f16_to_f32(h) : keel_emu_bf16_to_f32(h);
}
inline void mma(float (&d)[4], const unsigned int (&a)[4], const unsigned int (&b)[2], MmaKind kind) {
    unsigned int mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
    const unsigned char (*snap)[kSlot] = warp_exchange_aligned(mine, sizeof mine, "mma.sync");
    const int K = kind == MMA_TF32 ? 8 : 16;
    float A[16][16], B[16][8];
    for (int lane = 0; lane < 32; ++lane) {
        unsigned int r[6];
        std::memcpy(r, snap[lane], sizeof r);
        const int g = lane >> 2, t = lane & 3;
        if (kind == MMA_TF32) {
            A[g][t] = mma_elem(r[0], 0, kind);
            A[g + 8][t] = mma_elem(r[1], 0, kind);
            A[g][t + 4] = mma_elem(r[2], 0, kind);
            A[g + 8][t + 4] = mma_elem(r[3], 0, kind);
            B[t][g] = mma_elem(r[4], 0, kind);
            B[t + 4][g] = mma_elem(r[5], 0, kind);
        } else {
            for (int hf = 0; hf < 2; ++hf) {
                A[g][2 * t + hf] = mma_elem(r[0], hf, kind);
                A[g + 8][2 * t + hf] = mma_elem(r[1], hf, kind);
                A[g][2 * t + 8 + hf] = mma_elem(r[2], hf, kind);
                A[g + 8][2 * t + 8 + hf] = mma_elem(r[3], hf, kind);
                B[2 * t + hf][g] = mma_elem(r[4], hf, kind);
                B[2 * t + 8 + hf][g] = mma_elem(r[5], hf, kind);
            }
        }
    }
    const int g = lane_id() >> 2, t = lane_id() & 3;
    const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    for (int q = 0; q < 4; ++q) {
        double s = d[q];
        for (int k = 0; k < K; ++k) s += (double)A[rows[q]][k] * (double)B[k][cols[q]];
        d[q] = (float)s;
    }
}
}  // namespace keel_emu

// ---- ldmatrix and cp.async (sm_75 / sm_80) ------------------------------------------------
namespace keel_emu {
// ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16: lanes 8j..8j+7 give the 16-byte
// rows of matrix j; each lane receives, per matrix, the two b16 at (row lane/4, cols
// 2(lane%4), +1), or with .trans the two at (rows 2(lane%4), +1; col lane/4).
template <int N>
inline void ldmatrix(unsigned int (&r)[N], const void* row, bool trans) {
    static_assert(N == 1 || N == 2 || N == 4, "ldmatrix loads 1, 2 or 4 matrices");
    if (reinterpret_cast<uintptr_t>(row) & 15u) __builtin_trap();  // rows must be 16-byte aligned
    const unsigned char (*snap)[kSlot] = warp_exchange_aligned(&row, sizeof row, "ldmatrix");
    const int g = lane_id() >> 2, t = lane_id() & 3;
    for (int j = 0; j < N; ++j) {
        unsigned int v = 0;
        for (int h = 0; h < 2; ++h) {
            const int rr = trans ? 2 * t + h : g, cc = trans ? g : 2 * t + h;
            const unsigned short* p;
            std::memcpy(&p, snap[8 * j + rr], sizeof p);
            v |= (unsigned int)p[cc] << (16 * h);
        }
        r[j] = v;
    }
}

// cp.async.cg.shared.global [dst], [src], bytes, src_bytes: queued per thread and performed
// only when cp.async.wait_group retires its group, so a missing wait (or a missing barrier
// after another thread's wait) reads stale shared memory, as it can on a GPU.
inline void cp_async(void* dst, const void* src, int bytes, int src_bytes) {
    if ((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src)) % (uintptr_t)bytes) __builtin_trap();
    if (src_bytes < 0 || src_bytes > bytes) __builtin_trap();
    S.fibers[S.cur].copies.push_back(AsyncCopy{dst, src, bytes, src_bytes});
}
inline void cp_async_commit() {
    Fiber& f = S.fibers[S.cur];
    f.groups.push_back(f.copies.size());
}
// Completes every committed group but the newest `pending`.
inline void cp_async_wait(int pending) {
    Fiber& f = S.fibers[S.cur];
    size_t retire = f.groups.size() > (size_t)pending ? f.groups.size() - (size_t)pending : 0;
    if (retire == 0) return;
    const size_t end = f.groups[retire - 1];
    for (size_t i = f.done; i < end; ++i) {
        const AsyncCopy& c = f.copies[i];
        std::memcpy(c.dst, c.src, (size_t)c.src_bytes);
        std::memset(static_cast<unsigned char*>(c.dst) + c.src_bytes, 0, (size_t)(c.bytes - c.src_bytes));
    }
    f.done = end;
    f.groups.erase(f.groups.begin(), f.groups.begin() + (long)retire);
    if (f.done == f.copies.size() && f.groups.empty()) {
        f.copies.clear();
        f.done = 0;
    }
}
inline unsigned char* dynamic_smem() { return S.dyn_smem; }
}  // namespace keel_emu
