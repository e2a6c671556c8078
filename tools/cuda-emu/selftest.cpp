// Self-test of the emulator's device side: kernels that break CUDA's warp rules must stop
// the launch with a message (a GPU would give undefined values, which no test can see),
// and correct ones must run. Built and run by run-tests.sh before the GPU suite:
//   g++ -std=gnu++17 -x c++ -include keel_emu_device.h selftest.cpp -o selftest && ./selftest
#include <cstdio>
#include <cstdlib>
#include <cstring>

typedef float f32;

// A full-warp tree sum: correct on a GPU.
__global__ void warp_sum(const float* x, float* out) {
    float v = x[threadIdx.x];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (threadIdx.x % 32 == 0) out[threadIdx.x / 32] = v;
}

// Lanes 16..31 return, then the rest read them: undefined on a GPU.
__global__ void shfl_from_exited(const float* x, float* out) {
    if (threadIdx.x >= 16) return;
    float v = x[threadIdx.x];
    v += __shfl_xor_sync(0xffffffffu, v, 16);
    out[threadIdx.x] = v;
}

// The same reduction on a block of 48 threads: the second warp has 16 lanes.
__global__ void shfl_in_partial_warp(const float* x, float* out) { warp_sum(x, out); }

// A mask that leaves out the calling lane.
__global__ void mask_without_caller(const float* x, float* out) {
    out[threadIdx.x] = __shfl_sync(0x1u, x[threadIdx.x], 0);
}

// Lanes pass different masks to one shuffle.
__global__ void different_masks(const float* x, float* out) {
    const unsigned m = threadIdx.x < 16 ? 0x0000ffffu : 0xffffffffu;
    out[threadIdx.x] = __shfl_sync(m, x[threadIdx.x], 0);
}

// Shuffle-down in a full warp where lanes past the segment keep their own value: correct.
__global__ void shfl_down_ok(const float* x, float* out) {
    out[threadIdx.x] = __shfl_down_sync(0xffffffffu, x[threadIdx.x], 8, 16);
}

// Half the warp waits at a barrier, the other half at a shuffle: a deadlock on a GPU.
// (Threads that exit count as arrived at later barriers, as on sm_70 and later.)
__global__ void divergent_barrier(const float* x, float* out) {
    float v = x[threadIdx.x];
    if (threadIdx.x < 16) __syncthreads();
    else v = __shfl_xor_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

// ldmatrix (an .aligned instruction) after half the warp exited.
__global__ void ldmatrix_partial(const float* x, float* out) {
    __shared__ __align__(16) unsigned short tile[8][8];
    if (threadIdx.x >= 16) return;
    unsigned int r[1];
    keel_emu::ldmatrix(r, &tile[threadIdx.x % 8][0], false);
    out[threadIdx.x] = (float)r[0];
}

// Records the order blocks ran in: out[block] = the block's turn (out[63] counts).
__global__ void block_order_probe(const float* x, float* out) {
    if (threadIdx.x == 0) out[blockIdx.x] = out[63]++;
}

typedef void (*Kernel)(const float*, float*);

struct Case {
    const char* name;
    Kernel k;
    unsigned threads;
    const char* expect;  // nullptr: must succeed; else a substring of the error
};

int main() {
    const Case cases[] = {
        {"warp_sum", warp_sum, 64, nullptr},
        {"shfl_down_ok", shfl_down_ok, 32, nullptr},
        {"shfl_from_exited", shfl_from_exited, 32, "has exited"},
        {"shfl_in_partial_warp", shfl_in_partial_warp, 48, "does not exist"},
        {"mask_without_caller", mask_without_caller, 32, "does not name the calling lane"},
        {"different_masks", different_masks, 32, "different masks"},
        {"ldmatrix_partial", ldmatrix_partial, 32, "needs all 32 lanes"},
        {"divergent_barrier", divergent_barrier, 32, "deadlock"},
    };
    float x[64], out[64];
    for (int i = 0; i < 64; ++i) x[i] = (float)i;
    int failures = 0;
    for (const Case& c : cases) {
        static Kernel current;
        current = c.k;
        keel_emu::Launch l{{1, 1, 1}, {c.threads, 1, 1}, 0, 0};
        const float* xp = x;
        float* op = out;
        void* params[2] = {&xp, &op};
        char err[512] = {0};
        const int rc = keel_emu::launch(&l, params, [](void** p) { keel_emu::invoke(current, p); }, err, sizeof err);
        bool ok;
        if (c.expect == nullptr) {
            ok = rc == 0;
            if (ok && c.k == warp_sum) ok = out[0] == 496.0f && out[1] == 1520.0f;
            if (ok && c.k == shfl_down_ok) ok = out[0] == 8.0f && out[7] == 15.0f && out[8] == 8.0f && out[31] == 31.0f;
        } else {
            ok = rc != 0 && std::strstr(err, c.expect) != nullptr;
        }
        std::printf("%s %s: rc %d %s\n", ok ? "ok  " : "FAIL", c.name, rc, err);
        failures += !ok;
    }
    // Consecutive launches run their blocks in opposite orders (unless the order is fixed by
    // KEEL_CUDA_EMU_BLOCK_ORDER), so a kernel that needs lower blocks to finish first fails.
    float turns[2][4];
    for (int r = 0; r < 2; ++r) {
        keel_emu::Launch l{{4, 1, 1}, {32, 1, 1}, 0, 0};
        out[63] = 0.0f;
        const float* xp = x;
        float* op = out;
        void* params[2] = {&xp, &op};
        char err[512] = {0};
        keel_emu::launch(&l, params, [](void** p) { keel_emu::invoke(block_order_probe, p); }, err, sizeof err);
        for (int b = 0; b < 4; ++b) turns[r][b] = out[b];
    }
    bool reversed = true;
    for (int b = 0; b < 4; ++b) reversed = reversed && turns[0][b] + turns[1][b] == 3.0f;
    const bool fixed = std::getenv("KEEL_CUDA_EMU_BLOCK_ORDER") != nullptr;
    const bool order_ok = fixed || reversed;
    std::printf("%s block order alternates: %g %g %g %g, then %g %g %g %g\n", order_ok ? "ok  " : "FAIL", turns[0][0],
                turns[0][1], turns[0][2], turns[0][3], turns[1][0], turns[1][1], turns[1][2], turns[1][3]);
    failures += !order_ok;
    std::printf("cuda-emu selftest: %d of %zu cases wrong\n", failures, sizeof cases / sizeof cases[0] + 1);
    return failures != 0;
}
