//! Matching a tile's segments with the earlier tile's across one overlap.
//!
//! A segment of the current tile that crosses the midline of its top (or left) overlap with the
//! earlier tile is the same segment as whatever the earlier tile has under it there: it takes the
//! ID most common among the earlier tile's pixels under its own (pyshepseg's
//! `recodeSharedSegments`; ties go to the smallest ID, as `scipy.stats.mode` breaks them).
//!
//! pyshepseg counts 0 among those IDs, so a segment can be recoded to null where the earlier tile
//! left pixels unlabelled. Outside compatibility mode 0 is not a candidate; a segment with nothing
//! but 0 under it gets a new ID (a "fallback").

use std::collections::HashMap;

use ndarray::ArrayView2;

/// Which overlap: the strip at the top of the current tile, or at its left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Rows `0..overlap` of the current tile, against the bottom rows of the tile above.
    Top,
    /// Columns `0..overlap` of the current tile, against the right columns of the tile to the
    /// left.
    Left,
}

/// What a crossing segment becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recode {
    /// The earlier tile's global ID (0 only in compatibility mode).
    To(u32),
    /// Nothing but unlabelled pixels under it: needs a new ID.
    Fallback,
}

/// Adds to `recode` (local ID -> what it becomes) every segment of `current` (the tile's strip
/// on `side`, local IDs) that crosses the strip's midline, matched against `earlier` (the same
/// pixels in the earlier tile, global IDs). Later calls override earlier ones for the same ID,
/// as pyshepseg's dictionary does.
pub fn match_overlap(
    current: ArrayView2<u32>,
    earlier: ArrayView2<u32>,
    side: Side,
    compat: bool,
    recode: &mut HashMap<u32, Recode>,
) {
    let (rows, cols) = current.dim();
    let mid = match side {
        Side::Top => rows / 2,
        Side::Left => cols / 2,
    };
    // Extent across the midline axis, per segment (indexed by local ID).
    let max = current.iter().copied().max().unwrap_or(0) as usize;
    let mut extent = vec![(usize::MAX, 0usize); max + 1];
    for ((r, c), &id) in current.indexed_iter() {
        let n = if side == Side::Top { r } else { c };
        let e = &mut extent[id as usize];
        e.0 = e.0.min(n);
        e.1 = e.1.max(n);
    }
    // (segment, earlier ID) pairs under crossing segments, sorted to count runs.
    let mut pairs: Vec<u64> = Vec::new();
    for (&id, &b) in current.iter().zip(earlier.iter()) {
        if id == 0 {
            continue;
        }
        let (lo, hi) = extent[id as usize];
        if lo < mid && hi >= mid {
            pairs.push((u64::from(id) << 32) | u64::from(b));
        }
    }
    pairs.sort_unstable();
    let mut i = 0;
    while i < pairs.len() {
        let id = (pairs[i] >> 32) as u32;
        // The most common earlier ID under this segment; the first (smallest) wins ties.
        let mut best: Option<(u32, usize)> = None;
        while i < pairs.len() && (pairs[i] >> 32) as u32 == id {
            let b = pairs[i] as u32;
            let mut j = i;
            while j < pairs.len() && pairs[j] == pairs[i] {
                j += 1;
            }
            let count = j - i;
            if (compat || b != 0) && best.is_none_or(|(_, n)| count > n) {
                best = Some((b, count));
            }
            i = j;
        }
        recode.insert(
            id,
            match best {
                Some((b, _)) => Recode::To(b),
                None => Recode::Fallback,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn crossing_segments_take_the_most_common_earlier_id() {
        // 4-row top strip: segment 1 crosses row 2, segment 2 stays above it.
        let current = array![[1u32, 2], [1, 2], [1, 3], [1, 3]];
        let earlier = array![[7u32, 9], [7, 9], [8, 9], [7, 9]];
        let mut rec = HashMap::new();
        match_overlap(current.view(), earlier.view(), Side::Top, false, &mut rec);
        assert_eq!(rec.get(&1), Some(&Recode::To(7)));
        assert_eq!(rec.get(&2), None, "does not cross");
        assert_eq!(rec.get(&3), None, "does not cross: starts at the midline");
    }

    #[test]
    fn zero_wins_only_in_compat_mode() {
        let current = array![[1u32, 1], [1, 1]];
        let earlier = array![[0u32, 0], [5, 6]];
        let mut rec = HashMap::new();
        match_overlap(current.view(), earlier.view(), Side::Left, true, &mut rec);
        assert_eq!(rec[&1], Recode::To(0));
        match_overlap(current.view(), earlier.view(), Side::Left, false, &mut rec);
        assert_eq!(rec[&1], Recode::To(5), "ties go to the smallest ID");
        let zeros = array![[0u32, 0], [0, 0]];
        match_overlap(current.view(), zeros.view(), Side::Left, false, &mut rec);
        assert_eq!(rec[&1], Recode::Fallback);
    }
}
