//! An index of every segment's pixels (pyshepseg's `makeSegmentLocations`).
//!
//! Built in two passes over the segment image (a counting sort), it stores all pixel positions
//! in one array with an offset per segment, so per-segment work reads each segment's pixels as
//! one contiguous slice, in raster order.
//!
//! ```
//! use ndarray::array;
//! use shepseg_core::SegmentLocations;
//! let seg = array![[1u32, 2], [2, 0]];
//! let loc = SegmentLocations::new(&seg.view());
//! assert_eq!(loc.num_segments(), 2);
//! assert_eq!(loc.pixels(2), &[1, 2]);
//! assert_eq!(loc.row_col(2, 1), (1, 0));
//! ```

use ndarray::ArrayView2;

/// Pixel positions of every segment, indexed by segment ID (0, null, is not indexed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentLocations {
    cols: usize,
    /// `offsets[id]..offsets[id + 1]` are the entries of segment `id` in `pixels`.
    offsets: Vec<u32>,
    /// Linear pixel indices (`row * cols + col`), grouped by segment, raster order within each.
    pixels: Vec<u32>,
}

impl SegmentLocations {
    /// Indexes the segments of `seg` (IDs 1..=max; 0 is null and not indexed).
    ///
    /// Pixel indices are `u32`; images of more than 2^32 - 1 pixels are not supported (the
    /// in-memory segmentation rejects them first).
    pub fn new(seg: &ArrayView2<u32>) -> Self {
        let max = seg.iter().copied().max().unwrap_or(0);
        match seg.as_slice() {
            Some(flat) => Self::from_slice(flat, seg.ncols(), max),
            None => {
                let flat: Vec<u32> = seg.iter().copied().collect();
                Self::from_slice(&flat, seg.ncols(), max)
            }
        }
    }

    /// Indexes a row-major segment image given as a slice with `cols` columns, whose IDs are
    /// at most `max`.
    pub(crate) fn from_slice(seg: &[u32], cols: usize, max: u32) -> Self {
        let max = max as usize;
        let mut offsets = vec![0u32; max + 2];
        for &s in seg.iter() {
            if s != 0 {
                offsets[s as usize + 1] += 1;
            }
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let mut fill = offsets.clone();
        let mut pixels = vec![0u32; offsets[max + 1] as usize];
        for (p, &s) in seg.iter().enumerate() {
            if s != 0 {
                let slot = &mut fill[s as usize];
                pixels[*slot as usize] = p as u32;
                *slot += 1;
            }
        }
        Self {
            cols,
            offsets,
            pixels,
        }
    }

    /// The largest segment ID indexed.
    pub fn num_segments(&self) -> u32 {
        (self.offsets.len() - 2) as u32
    }

    /// Number of pixels in segment `id` (0 for IDs beyond the largest).
    pub fn size(&self, id: u32) -> usize {
        self.pixels(id).len()
    }

    /// Linear indices (`row * cols + col`) of segment `id`'s pixels, in raster order; empty for
    /// 0 and IDs beyond the largest.
    pub fn pixels(&self, id: u32) -> &[u32] {
        let id = id as usize;
        if id == 0 || id + 1 >= self.offsets.len() {
            return &[];
        }
        &self.pixels[self.offsets[id] as usize..self.offsets[id + 1] as usize]
    }

    /// `(row, col)` of the `k`-th pixel of segment `id`. Panics if out of range.
    pub fn row_col(&self, id: u32, k: usize) -> (usize, usize) {
        let p = self.pixels(id)[k] as usize;
        (p / self.cols, p % self.cols)
    }

    /// `(row, col)` of every pixel of segment `id`.
    pub fn rows_cols(&self, id: u32) -> impl Iterator<Item = (usize, usize)> + '_ {
        let cols = self.cols;
        self.pixels(id)
            .iter()
            .map(move |&p| (p as usize / cols, p as usize % cols))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn index_matches_image() {
        let seg = array![[3u32, 3, 0, 1], [1, 3, 3, 1]];
        let loc = SegmentLocations::new(&seg.view());
        assert_eq!(loc.num_segments(), 3);
        assert_eq!(loc.size(2), 0);
        assert_eq!(loc.pixels(0), &[] as &[u32]);
        assert_eq!(loc.pixels(99), &[] as &[u32]);
        for id in 1..=3 {
            for (r, c) in loc.rows_cols(id) {
                assert_eq!(seg[[r, c]], id);
            }
            assert_eq!(
                loc.size(id),
                seg.iter().filter(|&&v| v == id).count(),
                "segment {id}"
            );
        }
    }

    #[test]
    fn all_null() {
        let seg = ndarray::Array2::<u32>::zeros((2, 2));
        let loc = SegmentLocations::new(&seg.view());
        assert_eq!(loc.num_segments(), 0);
    }
}
