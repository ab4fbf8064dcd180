//! Helpers shared by the crate's unit tests.

use ndarray::Array2;
use shepseg_core::rng::SplitMix64;

/// A random `rows x cols` array of blocky segments (runs along rows and columns, as segments
/// make) with some scattered pixels and nulls; IDs up to `ids`.
pub(crate) fn blocky(rng: &mut SplitMix64, rows: usize, cols: usize, ids: usize) -> Array2<u32> {
    let cell = 1 + rng.below(6);
    Array2::from_shape_fn((rows, cols), |(r, c)| {
        if rng.below(20) == 0 {
            rng.below(ids + 1) as u32
        } else {
            ((r / cell * 7 + c / cell * 3) % (ids + 1)) as u32
        }
    })
}
