// keel pipelined tensor-core GEMM for F16 and BF16 (sm_80+). Same contract as gemm_tc.cu
// (GemmParams, the four forms, bias + activation epilogue, f32 accumulation and output); built
// for throughput on large aligned problems:
// * global -> shared through cp.async (16 bytes per copy, zero-filled past the matrix edge),
//   with PSTAGES k-tiles in flight and one __syncthreads per k-tile;
// * a shared tile keeps its operand's global layout: k-contiguous [rows][PBK + 8] or
//   row-contiguous [PBK][rows + 8]; the 8-element pad makes every ldmatrix phase
//   bank-conflict free;
// * fragments come from ldmatrix (.trans for row-contiguous tiles), so all four forms read
//   shared memory the same way.
// Block tile 128 x BN x 32, 8 warps as 2 (M) x 4 (N), each warp 64 x BN/4 = 4 x BN/32 mma
// m16n8k16. BN = 128 (`_pipe`, what matmul runs, two blocks per SM) or 256 (`_pipe_w`, a
// tuning candidate: 64x64 warp tiles read 8 ldmatrix.x4 per 32 mma instead of 6 per 16,
// 123 KiB of shared memory and up to 255 registers, one block per SM; no split-K).
// The block (tc_pipe_block) reads its operands through chunk loaders, so conv_tc.cu runs the
// F16/BF16 convolutions on it too (BN = 128).
// Preconditions (the wrapper checks them): lda, ldb and the batch strides are multiples of
// 8 elements, A and B are 16-byte aligned, and the launch passes PIPE_SMEM_BYTES of dynamic
// shared memory (pipe_smem_bytes<BN>(), mirrored by `PIPE_SMEM_BYTES` and
// `PIPE_WIDE_SMEM_BYTES` in ops/gemm.rs).

#define PBM 128
#define PBN 128
#define PBK 32
#define PSTAGES 4

#ifdef KEEL_CUDA_EMU  // tools/cuda-emu: per-thread cp.async queues, warp-collective ldmatrix
__device__ __forceinline__ unsigned char* keel_dynamic_smem() { return keel_emu::dynamic_smem(); }
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
    keel_emu::cp_async(dst, src, 16, src_bytes);
}
__device__ __forceinline__ void cp_async_commit() { keel_emu::cp_async_commit(); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { keel_emu::cp_async_wait(N); }
__device__ __forceinline__ void ldmatrix_x4(u32 (&r)[4], const u16* p) { keel_emu::ldmatrix<4>(r, p, false); }
__device__ __forceinline__ void ldmatrix_x4_trans(u32 (&r)[4], const u16* p) { keel_emu::ldmatrix<4>(r, p, true); }
#else
extern __shared__ __align__(16) unsigned char keel_dyn_smem[];
__device__ __forceinline__ unsigned char* keel_dynamic_smem() { return keel_dyn_smem; }
__device__ __forceinline__ u32 smem_u32(const void* p) {
    u32 r;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(r) : "l"(p));
    return r;
}
// Copies 16 bytes, of which the first `src_bytes` are read from `src` and the rest zeroed.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_u32(dst)), "l"(src), "r"(src_bytes)
                 : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory"); }
__device__ __forceinline__ void ldmatrix_x4(u32 (&r)[4], const u16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(u32 (&r)[4], const u16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}
#endif

// Elements of one operand tile in shared memory: room for either layout.
#define PIPE_TILE_EL(ROWS) ((ROWS) * (PBK + 8) > PBK * ((ROWS) + 8) ? (ROWS) * (PBK + 8) : PBK * ((ROWS) + 8))
#define PIPE_A_EL PIPE_TILE_EL(PBM)
// Elements of one pipeline stage (an A tile, then a B tile) of a 128 x BN block tile.
template <int BN>
__host__ __device__ constexpr int pipe_stage_el() {
    return PIPE_TILE_EL(PBM) + PIPE_TILE_EL(BN);
}
template <int BN>
__host__ __device__ constexpr int pipe_smem_bytes() {
    return PSTAGES * pipe_stage_el<BN>() * 2;
}
static_assert(pipe_smem_bytes<128>() == 81920, "PIPE_SMEM_BYTES in ops/gemm.rs");
static_assert(pipe_smem_bytes<256>() == 122880, "PIPE_WIDE_SMEM_BYTES in ops/gemm.rs");

// A pipelined operand ("chunk loader"): rows x K, read as 16-byte chunks of 8 elements along
// the contiguous direction: along k when K_CONTIG (shared tile [rows][PBK + 8]), else along
// rows (shared tile [PBK][rows + 8]). begin(r0) runs once per block tile (rows r0..);
// chunk(j, r, k, bytes) returns the source of the chunk that starts at (r, k), this thread's
// j-th chunk of the tile (its row is the same in every k-tile), and sets `bytes` to how many
// of its 16 bytes exist (0 past an edge: the copy then zero-fills and reads nothing).
//
// PipeMat: a dense row-major matrix, element (r, k) at p[r * ld + k] (K_CONTIG) or
// p[k * ld + r]; needs ld % 8 == 0 and a 16-byte aligned p.
template <bool KC>
struct PipeMat {
    static constexpr bool K_CONTIG = KC;
    const u16* p;
    i64 ld, rows, kdim;
    __device__ __forceinline__ void begin(i64) {}
    __device__ __forceinline__ const u16* chunk(int, i64 r, i64 k, int& bytes) const {
        if (r >= rows || k >= kdim) {
            bytes = 0;
            return p;
        }
        const i64 left = KC ? kdim - k : rows - r;
        bytes = 2 * (int)(left < 8 ? left : 8);
        return KC ? p + r * ld + k : p + k * ld + r;
    }
};

// Issues the cp.async copies of one ROWS x PBK tile of `ld` at (r0, k0) into `s`.
template <int ROWS, class L>
__device__ __forceinline__ void pipe_load_tile(const L& ld, i64 r0, i64 k0, u16* s) {
    constexpr int CHUNKS = ROWS * PBK / 8;
    static_assert(CHUNKS % 256 == 0, "every thread copies the same number of chunks");
#pragma unroll
    for (int j = 0; j < CHUNKS / 256; ++j) {
        const int c = threadIdx.x + 256 * j;
        int r, k;
        u16* dst;
        if (L::K_CONTIG) {
            r = c / (PBK / 8);
            k = (c % (PBK / 8)) * 8;
            dst = s + r * (PBK + 8) + k;
        } else {
            k = c / (ROWS / 8);
            r = (c % (ROWS / 8)) * 8;
            dst = s + k * (ROWS + 8) + r;
        }
        int bytes;
        const u16* src = ld.chunk(j, r0 + r, k0 + k, bytes);
        cp_async16(dst, src, bytes);
    }
}

// One warp's 64 x 8NT share of one k-tile of a 128 x BN block tile (NT = BN / 32 n8-tiles).
// Fragments as in the PTX ISA for m16n8k16: ldmatrix lane i addresses row i % 8 of matrix i / 8.
template <class T, bool AKC, bool BKC, int BN, int NT>
__device__ __forceinline__ void pipe_warp_mma(const u16* As, const u16* Bs, int wm, int wn, int lane,
                                              float (&acc)[4][NT][4]) {
    static_assert(NT * 32 == BN, "8 warps as 2 x 4: a warp has BN / 4 columns");
    constexpr int ALD = AKC ? PBK + 8 : PBM + 8;
    constexpr int BLD = BKC ? PBK + 8 : BN + 8;
    const int i8 = lane & 7, hi = lane >> 4, mid = (lane >> 3) & 1;
#pragma unroll
    for (int ks = 0; ks < PBK; ks += 16) {
        u32 a[4][4], b[NT][2];
#pragma unroll
        for (int mt = 0; mt < 4; ++mt) {
            // matrices: (m 0-7, k 0-7), (m 8-15, k 0-7), (m 0-7, k 8-15), (m 8-15, k 8-15)
            if (AKC)
                ldmatrix_x4(a[mt], As + (wm + mt * 16 + i8 + 8 * mid) * ALD + ks + 8 * hi);
            else
                ldmatrix_x4_trans(a[mt], As + (ks + i8 + 8 * hi) * ALD + wm + mt * 16 + 8 * mid);
        }
#pragma unroll
        for (int np = 0; np < NT / 2; ++np) {
            // matrices: (n-tile 2np, k 0-7), (2np, k 8-15), (2np+1, k 0-7), (2np+1, k 8-15)
            u32 r[4];
            const int n = wn + np * 16;
            if (BKC)
                ldmatrix_x4(r, Bs + (n + i8 + 8 * hi) * BLD + ks + 8 * mid);
            else
                ldmatrix_x4_trans(r, Bs + (ks + i8 + 8 * mid) * BLD + n + 8 * hi);
            b[2 * np][0] = r[0];
            b[2 * np][1] = r[1];
            b[2 * np + 1][0] = r[2];
            b[2 * np + 1][1] = r[3];
        }
#pragma unroll
        for (int mt = 0; mt < 4; ++mt)
#pragma unroll
            for (int nt = 0; nt < NT; ++nt) T::mma(acc[mt][nt], a[mt], b[nt]);
    }
}

// The 128 x BN block tile at (m0, n0) of A (LA: M x K) times B (LB: N x K)^T over k in
// [k_begin, k_end), accumulated into this warp's `acc`. The loaders stop only at K, so
// k_end - k_begin must be a multiple of PBK unless k_end == K (a split-K caller sizes its
// splits in whole k-tiles).
// Leaves every copy retired and every thread past the last read of shared memory, so the
// caller may run it again at once (the next batch matrix, the next split).
template <class T, int BN = PBN, class LA, class LB, int NT>
__device__ __forceinline__ void tc_pipe_block(LA& la, LB& lb, i64 m0, i64 n0, i64 k_begin, i64 k_end,
                                              float (&acc)[4][NT][4]) {
    constexpr int STAGE_EL = pipe_stage_el<BN>();
    la.begin(m0);
    lb.begin(n0);
    u16* smem = reinterpret_cast<u16*>(keel_dynamic_smem());
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * (BN / 4);
    const i64 ktiles = k_end > k_begin ? (k_end - k_begin + PBK - 1) / PBK : 0;
    // Prologue: k-tiles 0 .. PSTAGES-2 in flight, one commit group each (empty past the end).
#pragma unroll
    for (int s = 0; s < PSTAGES - 1; ++s) {
        if (s < ktiles) {
            u16* st = smem + s * STAGE_EL;
            pipe_load_tile<PBM>(la, m0, k_begin + (i64)s * PBK, st);
            pipe_load_tile<BN>(lb, n0, k_begin + (i64)s * PBK, st + PIPE_A_EL);
        }
        cp_async_commit();
    }
    for (i64 kt = 0; kt < ktiles; ++kt) {
        cp_async_wait<PSTAGES - 2>();  // this thread's copies of k-tile kt have landed
        __syncthreads();               // everyone's have; and slot (kt - 1) % PSTAGES is free
        const i64 next = kt + PSTAGES - 1;
        if (next < ktiles) {
            u16* st = smem + (int)(next % PSTAGES) * STAGE_EL;
            pipe_load_tile<PBM>(la, m0, k_begin + next * PBK, st);
            pipe_load_tile<BN>(lb, n0, k_begin + next * PBK, st + PIPE_A_EL);
        }
        cp_async_commit();
        const u16* st = smem + (int)(kt % PSTAGES) * STAGE_EL;
        pipe_warp_mma<T, LA::K_CONTIG, LB::K_CONTIG, BN>(st, st + PIPE_A_EL, wm, wn, lane, acc);
    }
    cp_async_wait<0>();
    __syncthreads();  // a following call refills the slots
}

// One 128 x BN block tile (M tile blockIdx.x, N tile blockIdx.y) of A (M x K) times
// B (N x K)^T over k in [k_begin, k_end), handed to `epi`.
template <class T, int BN = PBN, class LA, class LB, class Epi>
__device__ __forceinline__ void tc_pipe_tile(LA& la, LB& lb, const Epi& epi, i64 k_begin, i64 k_end) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const i64 m0 = (i64)blockIdx.x * PBM, n0 = (i64)blockIdx.y * BN;
    float acc[4][BN / 32][4];
    tc_zero(acc);
    tc_pipe_block<T, BN>(la, lb, m0, n0, k_begin, k_end, acc);
    tc_store_acc(acc, epi, m0 + (warp >> 2) * 64, n0 + (warp & 3) * (BN / 4), lane);
}

// Split-K or batched through `gemm_grid_z` (gemm_core.cuh), each range of k a multiple of PBK.
template <class T, bool TA, bool TB>
__device__ __forceinline__ void gemm_tc_pipe_impl(const u16* __restrict__ a, const u16* __restrict__ b, void* c,
                                                  const void* __restrict__ bias, const GemmParams& p, i64 k_split,
                                                  float* ws, unsigned* tickets) {
    gemm_grid_z(
        p, k_split, ws, tickets, [&](i64 z) { return gemm_epi_any(p, c, z, bias); },
        [&](i64 zb, const GemmEpiAny& epi, i64 k0, i64 k1) {
            PipeMat<!TA> la{a + zb * p.stride_a, p.lda, p.m, p.k};
            PipeMat<TB> lb{b + zb * p.stride_b, p.ldb, p.n, p.k};
            tc_pipe_tile<T>(la, lb, epi, k0, k1);
        });
}

// The wide candidate (BN = 256): a whole GEMM per launch (batched, no split-K).
template <class T, bool TA, bool TB>
__device__ __forceinline__ void gemm_tc_pipe_wide_impl(const u16* __restrict__ a, const u16* __restrict__ b, void* c,
                                                       const void* __restrict__ bias, const GemmParams& p) {
    for (i64 z = blockIdx.z; z < p.batch; z += gridDim.z) {
        PipeMat<!TA> la{a + z * p.stride_a, p.lda, p.m, p.k};
        PipeMat<TB> lb{b + z * p.stride_b, p.ldb, p.n, p.k};
        tc_pipe_tile<T, 256>(la, lb, gemm_epi_any(p, c, z, bias), 0, p.k);
    }
}

#define KEEL_GEMM_TC_PIPE(TN, T, SUFFIX, TA, TB)                                                \
    extern "C" __global__ void __launch_bounds__(256, 2)                                       \
        gemm_tc_##TN##_##SUFFIX##_pipe(const u16* a, const u16* b, void* c, const void* bias,  \
                                        GemmParams p, i64 k_split, float* ws, unsigned* tickets) { \
        gemm_tc_pipe_impl<T, TA, TB>(a, b, c, bias, p, k_split, ws, tickets);                  \
    }
#define KEEL_GEMM_TC_PIPE_FORMS(TN, T)          \
    KEEL_GEMM_TC_PIPE(TN, T, nn, false, false)  \
    KEEL_GEMM_TC_PIPE(TN, T, nt, false, true)   \
    KEEL_GEMM_TC_PIPE(TN, T, tn, true, false)   \
    KEEL_GEMM_TC_PIPE(TN, T, tt, true, true)
#if KEEL_PART == 0 || KEEL_PART == 4
KEEL_GEMM_TC_PIPE_FORMS(f16, TcF16)
#endif
#if KEEL_PART == 0 || KEEL_PART == 5
KEEL_GEMM_TC_PIPE_FORMS(bf16, TcBf16)
#endif

#define KEEL_GEMM_TC_PIPE_W(TN, T, SUFFIX, TA, TB)                                             \
    extern "C" __global__ void __launch_bounds__(256, 1)                                       \
        gemm_tc_##TN##_##SUFFIX##_pipe_w(const u16* a, const u16* b, void* c, const void* bias, \
                                          GemmParams p) {                                      \
        gemm_tc_pipe_wide_impl<T, TA, TB>(a, b, c, bias, p);                                   \
    }
#define KEEL_GEMM_TC_PIPE_W_FORMS(TN, T)          \
    KEEL_GEMM_TC_PIPE_W(TN, T, nn, false, false)  \
    KEEL_GEMM_TC_PIPE_W(TN, T, nt, false, true)   \
    KEEL_GEMM_TC_PIPE_W(TN, T, tn, true, false)   \
    KEEL_GEMM_TC_PIPE_W(TN, T, tt, true, true)
// Part 8: the wide candidates of both types (compiled only when one is asked for).
#if KEEL_PART == 0 || KEEL_PART == 8
KEEL_GEMM_TC_PIPE_W_FORMS(f16, TcF16)
KEEL_GEMM_TC_PIPE_W_FORMS(bf16, TcBf16)
#endif
