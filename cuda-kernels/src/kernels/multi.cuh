// keel multi-tensor launches (PyTorch's multi_tensor_apply idea): one launch works on many
// tensors, whose pointers travel in the kernel's parameter space in a list struct (under the
// 4 KiB every architecture allows) with these fields:
//   i64 n[MAX];               elements of tensor k
//   i64 tile_start[MAX + 1];  tile_start[k]: first tile of tensor k; [count]: all tiles
//   i64 count;                tensors in the list
// Each tensor is cut into tiles of KEEL_MULTI_TILE elements; blocks take tiles in a
// grid-stride loop and find their tensor by a binary search over the tile prefix sums.
// Which thread handles an element never changes its value: the kernels are elementwise.

#define KEEL_MULTI_TILE 2048

// The tensor that tile `tile` (< tile_start[count]) belongs to: the largest k with
// tile_start[k] <= tile (empty tensors own no tile and are skipped that way).
template <class List>
__device__ __forceinline__ int multi_tensor_of(const List& L, i64 tile) {
    int lo = 0, hi = (int)L.count - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (L.tile_start[mid] <= tile) lo = mid; else hi = mid - 1;
    }
    return lo;
}

// The end of the range of tensor k's elements that tile `tile` covers.
template <class List>
__device__ __forceinline__ i64 multi_tile_end(const List& L, int k, i64 tile) {
    const i64 end = (tile - L.tile_start[k] + 1) * KEEL_MULTI_TILE;
    return end < L.n[k] ? end : L.n[k];
}

// For every element: `k` its tensor, `i` its index within that tensor.
#define KEEL_MULTI_LOOP(L, k, i)                                                                   \
    for (i64 tile_ = blockIdx.x; tile_ < (L).tile_start[(L).count]; tile_ += gridDim.x)             \
        for (int k = multi_tensor_of((L), tile_), once_ = 1; once_; once_ = 0)                      \
            for (i64 i = (tile_ - (L).tile_start[k]) * KEEL_MULTI_TILE + threadIdx.x,               \
                     end_ = multi_tile_end((L), k, tile_);                                           \
                 i < end_; i += blockDim.x)
