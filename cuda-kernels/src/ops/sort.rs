//! Stable radix sort of u32 keys (`kernels/sort.cu`): the deterministic accumulating
//! backwards ([`crate::ops::index::gather_backward`],
//! [`crate::ops::index::index_select_backward`]) order their contributions with it.

use cudarc::driver::{CudaSlice, LaunchConfig};

use crate::device::CudaDevice;
use crate::error::{Error, Result};
use crate::sources::programs;

/// Keys per tile: one per thread of a histogram or scatter block (`KEEL_SORT_TILE`).
const TILE: usize = 256;
/// Digit values of a pass: 8 bits of the key (`KEEL_SORT_BINS`).
const BINS: usize = 256;
/// Threads of the one-block scan (`KEEL_SCAN_THREADS`).
const SCAN_THREADS: u32 = 512;

/// Radix passes for keys up to `max_key`: 8 bits each, at least one.
fn passes(max_key: u32) -> u32 {
    (32 - max_key.leading_zeros()).div_ceil(8).max(1)
}

/// Sorts `keys` (each at most `max_key`) stably: returns the sorted keys and, for each, its
/// position in `keys` (equal keys in position order; a stable argsort). One radix pass per 8
/// bits of `max_key` (a key of 10,000 takes 2), three launches each; no atomics decide the
/// order, so the result is the same on every run and for every launch shape. Keys above
/// `max_key` are sorted by their low bits only (wrongly): callers bound their keys. `keys`
/// must not be empty.
pub fn argsort_u32(dev: &CudaDevice, keys: CudaSlice<u32>, max_key: u32) -> Result<(CudaSlice<u32>, CudaSlice<u32>)> {
    const OP: &str = "argsort";
    let n = keys.len();
    if n == 0 {
        return Err(Error::arg(OP, "no keys to sort (a device buffer holds at least one element)"));
    }
    if u32::try_from(n).is_err() {
        return Err(Error::arg(OP, format!("{n} keys: at most {} can be sorted", u32::MAX)));
    }
    let tiles = n.div_ceil(TILE);
    let m = BINS * tiles;
    let mut hist = dev.alloc::<u32>(m)?;
    let (mut ka, mut kb) = (keys, dev.alloc::<u32>(n)?);
    let (mut va, mut vb) = (dev.alloc::<u32>(n)?, dev.alloc::<u32>(n)?);
    let tile_cfg = LaunchConfig { grid_dim: (tiles as u32, 1, 1), block_dim: (TILE as u32, 1, 1), shared_mem_bytes: 0 };
    let scan_cfg = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (SCAN_THREADS, 1, 1), shared_mem_bytes: 0 };
    let (n, tiles, m) = (n as i64, tiles as i64, m as i64);
    for pass in 0..passes(max_key) {
        let (shift, first) = (8 * i64::from(pass), i64::from(pass == 0));
        let sort = programs::sort();
        launch!(dev, sort, "radix_histogram", tile_cfg, [&ka, &n, &shift, &mut hist, &tiles])?;
        launch!(dev, sort, "radix_scan", scan_cfg, [&mut hist, &m])?;
        launch!(dev, sort, "radix_scatter", tile_cfg, [&ka, &va, &n, &shift, &first, &hist, &tiles, &mut kb, &mut vb])?;
        std::mem::swap(&mut ka, &mut kb);
        std::mem::swap(&mut va, &mut vb);
    }
    Ok((ka, va))
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_pass_per_eight_bits() {
        use super::passes;
        assert_eq!(
            [passes(0), passes(1), passes(255), passes(256), passes(65_535), passes(65_536)],
            [1, 1, 1, 2, 2, 3]
        );
        assert_eq!(passes(u32::MAX), 4);
    }
}
