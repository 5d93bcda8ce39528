// The CUB parts of tile binning: the exclusive scan of per-Gaussian tile counts
// and the radix sort of the pair keys. Apart from bin.cu because CUB's sort
// takes the longest to compile: the two files build in parallel.
#include <cub/cub.cuh>

#include "kernels.h"

namespace splat {
namespace gpu {

size_t scan_workspace_bytes(int64_t n) {
    size_t bytes = 0;
    cub::DeviceScan::ExclusiveSum(nullptr, bytes, static_cast<const int32_t*>(nullptr), static_cast<int64_t*>(nullptr), n);
    return bytes;
}

void exclusive_scan(const int32_t* counts, int64_t* offsets, int64_t n, void* workspace, size_t bytes, cudaStream_t stream) {
    if (n == 0) return;
    cub::DeviceScan::ExclusiveSum(workspace, bytes, counts, offsets, n, stream);
}

int sort_end_bit(int64_t total_tiles) {
    int bits = 0;
    while ((int64_t(1) << bits) < total_tiles) ++bits;
    return 32 + bits;
}

size_t sort_workspace_bytes(int64_t pairs, int end_bit) {
    size_t bytes = 0;
    cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const uint64_t*>(nullptr), static_cast<uint64_t*>(nullptr),
                                    static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), pairs, 0, end_bit);
    return bytes;
}

void sort_pairs(const uint64_t* keys_in, uint64_t* keys_out, const int32_t* values_in, int32_t* values_out, int64_t pairs,
                int end_bit, void* workspace, size_t bytes, cudaStream_t stream) {
    if (pairs == 0) return;
    cub::DeviceRadixSort::SortPairs(workspace, bytes, keys_in, keys_out, values_in, values_out, pairs, 0, end_bit, stream);
}

}  // namespace gpu
}  // namespace splat
