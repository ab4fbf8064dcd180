//! Elimination: single pixels first, then small segments, each merged into a neighbour.
//!
//! Single-pixel elimination (Shepherd et al. 2019, section 2.3; module `single`) gives each
//! one-pixel segment the segment of its spectrally nearest neighbouring *pixel*, in raster scans
//! applied scan by scan until nothing changes. Small-segment elimination (module `small`) then
//! takes sizes 1, 2, ..., `min_segment_size - 1` in turn and merges each segment of that size
//! into the neighbour whose mean spectrum is nearest, provided that neighbour is strictly larger
//! and within maxSpectralDiff, in up to 10 passes per size. Both end by relabelling the
//! survivors to contiguous IDs ([`Renumbering`], here, which both share).
//!
//! In compatibility mode the arithmetic and orders are pyshepseg's (see the crate docs):
//! `float32` spectral sums in raster order, ties to the first neighbour found in a segment's
//! pixel list, a merged segment's list being the target's followed by the merged one's, and the
//! null segment absorbing valid single pixels. The default mode's rules depend on no visiting
//! order (`small::Spectra`), and the null segment absorbs nothing. Small-segment elimination keeps, for
//! each segment small at the start, its neighbours in that order instead of its pixels, and
//! resolves them through a union-find of the merges (see `small::Merger`), so a scan reads a few
//! list entries and the segment image is relabelled once, at the end.

mod neighbours;
#[cfg(test)]
mod scan_oracle;
mod single;
mod small;

use crate::mem::zeroed;

pub(crate) use neighbours::for_each_neighbour;
pub(crate) use single::eliminate_single_pixels_sized;
pub(crate) use small::{
    eliminate_small_graph, eliminate_small_segments_renumbered, ExactSum, GraphElimination,
    SegmentGraph,
};

/// Pixel counts per segment ID (index 0 counts the null pixels).
#[cfg(test)]
pub(crate) fn segment_sizes(seg: &[u32], max_id: u32) -> Vec<u32> {
    let mut size = vec![0u32; max_id as usize + 1];
    for &s in seg {
        size[s as usize] += 1;
    }
    size
}

/// Renumbers non-empty segments to 1..N in their old order; returns N.
#[cfg(test)]
pub(crate) fn relabel(seg: &mut [u32], size: &[u32]) -> u32 {
    Renumbering::of_sizes(size).apply(seg)
}

/// The new ID of each old one under [`relabel`] (0 for empty segments and for 0), and N.
fn relabel_map(size: &[u32]) -> (Vec<u32>, u32) {
    let mut map = zeroed::<u32>(size.len());
    let mut next = 0u32;
    // Without branches: which segments are empty is close to random after an elimination.
    for (m, &count) in map.iter_mut().zip(size).skip(1) {
        let kept = count > 0;
        next += u32::from(kept);
        *m = if kept { next } else { 0 };
    }
    (map, next)
}

/// A relabelling to contiguous IDs (as [`relabel`] does) worked out from the segment sizes but
/// not yet applied to the segment image, so that the next pass over the image can apply it on
/// the way (small-segment elimination's first pass does).
pub(crate) struct Renumbering {
    /// The new ID of each old one (0 for empty segments and for 0).
    pub(crate) map: Vec<u32>,
    /// Pixels per new ID (index 0: the null pixels).
    pub(crate) size: Vec<u32>,
}

impl Renumbering {
    /// The renumbering that drops the empty segments of `size` (pixels per old ID).
    fn of_sizes(size: &[u32]) -> Self {
        let (map, n) = relabel_map(size);
        let mut new_size = zeroed::<u32>(n as usize + 1);
        // Empty segments map to 0 and write their 0 there, without a branch; slot 0 (the
        // null pixels) is set last.
        for (&to, &count) in map.iter().zip(size).skip(1) {
            new_size[to as usize] = count;
        }
        new_size[0] = size.first().copied().unwrap_or(0);
        Self {
            map,
            size: new_size,
        }
    }

    /// The largest new ID.
    pub(crate) fn max_id(&self) -> u32 {
        self.size.len() as u32 - 1
    }

    /// Applies the renumbering to `seg`; returns the largest new ID.
    #[cfg(test)]
    fn apply(&self, seg: &mut [u32]) -> u32 {
        for s in seg.iter_mut() {
            *s = self.map[*s as usize];
        }
        self.max_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relabel_is_contiguous_and_ordered() {
        let mut seg = vec![0, 3, 3, 5, 1];
        let size = segment_sizes(&seg, 5);
        assert_eq!(relabel(&mut seg, &size), 3);
        assert_eq!(seg, vec![0, 2, 2, 3, 1]);
    }
}
