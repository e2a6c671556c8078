//! The host side of the multi-tensor launches (`kernels/multi.cuh`): tile prefix sums.

use crate::device::to_i64;
use crate::error::Result;

/// Elements per block tile (`KEEL_MULTI_TILE` in multi.cuh).
pub(crate) const MULTI_TILE: usize = 2048;

/// Fills `tile_start` (at least `ns.len() + 1` long) with the tile prefix sums of tensors of
/// `ns` elements (`tile_start[k]`: the first tile of tensor k; `[ns.len()]`: all tiles) and
/// returns the tile count, which is the launch's block count at 256 threads per block.
pub(crate) fn tile_starts(
    op: &'static str,
    ns: impl IntoIterator<Item = usize>,
    tile_start: &mut [i64],
) -> Result<usize> {
    let mut tiles = 0usize;
    let mut k = 0;
    for n in ns {
        tile_start[k] = to_i64(op, tiles)?;
        tiles += n.div_ceil(MULTI_TILE);
        k += 1;
    }
    tile_start[k] = to_i64(op, tiles)?;
    Ok(tiles)
}
