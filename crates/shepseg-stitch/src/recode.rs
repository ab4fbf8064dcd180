//! Matching a tile's segments with the earlier tile's across one overlap.
//!
//! A segment of the current tile that crosses the midline of its top (or left) overlap with the
//! earlier tile is the same segment as whatever the earlier tile has under it there: it takes the
//! ID most common among the earlier tile's pixels under its own (pyshepseg's
//! `recodeSharedSegments`; ties go to the smallest ID, as `scipy.stats.mode` breaks them).
//!
//! The work is split in two so that the per-pixel part can run in parallel, before the earlier
//! tile is stitched: [`pair_counts`] counts, per crossing segment, the pixels under it of each of
//! the earlier tile's *local* IDs; [`recode_from_pairs`] then maps those local IDs through the
//! earlier tile's lookup table (per segment, not per pixel) and takes the mode. Summing counts of
//! local IDs that map to the same stitched ID gives exactly the counts of stitched IDs, so the
//! result is the one a per-pixel pass over stitched IDs gives.
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

impl Side {
    /// The midline of a `rows x cols` strip on this side: the first row (top) or column
    /// (left) of its second half.
    fn midline(self, rows: usize, cols: usize) -> usize {
        match self {
            Side::Top => rows / 2,
            Side::Left => cols / 2,
        }
    }
}

/// What a crossing segment becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recode {
    /// The earlier tile's global ID (0 only in compatibility mode).
    To(u32),
    /// Nothing but unlabelled pixels under it: needs a new ID.
    Fallback,
}

/// `(current local ID, earlier local ID, pixels)` for every segment of `current` (the tile's
/// strip on `side`, local IDs) that crosses the strip's midline, over the same pixels of
/// `earlier` (the earlier tile's strip, local IDs); sorted by current, then earlier ID.
///
/// A segment crosses when it has a pixel on each side of the midline. Both passes are
/// written for speed, since they see every overlap pixel: the sides are marked by plain
/// stores (a read-modify-write per pixel would wait on the previous pixel's store, which
/// is usually the same segment's), and equal neighbouring pairs are counted as one run
/// before the sort.
pub fn pair_counts(
    current: ArrayView2<u32>,
    earlier: ArrayView2<u32>,
    side: Side,
) -> Vec<(u32, u32, u64)> {
    let (rows, cols) = current.dim();
    let mid = side.midline(rows, cols);
    let max = current.iter().copied().max().unwrap_or(0) as usize;
    // Whether each segment has a pixel before the midline, and one at or after it.
    let mut before = vec![false; max + 1];
    let mut after = vec![false; max + 1];
    for (r, row) in current.outer_iter().enumerate() {
        let split = match side {
            Side::Top if r < mid => cols,
            Side::Top => 0,
            Side::Left => mid,
        };
        for (c, &id) in row.iter().enumerate() {
            if c < split {
                before[id as usize] = true;
            } else {
                after[id as usize] = true;
            }
        }
    }
    let crossing: Vec<bool> = before
        .iter()
        .zip(&after)
        .enumerate()
        .map(|(id, (&b, &a))| id != 0 && a && b)
        .collect();
    // Runs of one (current, earlier) pair along the rows, then sorted and summed.
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for (cur, ear) in current.outer_iter().zip(earlier.outer_iter()) {
        for (&id, &b) in cur.iter().zip(ear.iter()) {
            if crossing[id as usize] {
                add_run(&mut runs, (u64::from(id) << 32) | u64::from(b), 1);
            }
        }
    }
    summed_pairs(runs)
}

/// `(key, pixels)` runs, keyed `current << 32 | earlier`, sorted and summed per key into
/// `(current, earlier, pixels)`.
fn summed_pairs(mut runs: Vec<(u64, u64)>) -> Vec<(u32, u32, u64)> {
    runs.sort_unstable_by_key(|r| r.0);
    let mut summed = Vec::with_capacity(runs.len());
    for (key, n) in runs {
        add_run(&mut summed, key, n);
    }
    summed
        .into_iter()
        .map(|(key, n)| ((key >> 32) as u32, key as u32, n))
        .collect()
}

/// Adds `n` to the last run if it has `key`, else starts a run.
fn add_run(runs: &mut Vec<(u64, u64)>, key: u64, n: u64) {
    match runs.last_mut() {
        Some(r) if r.0 == key => r.1 += n,
        _ => runs.push((key, n)),
    }
}

/// Adds to `recode` (local ID -> what it becomes) every crossing segment of `pairs` (from
/// [`pair_counts`]), the earlier tile's local IDs mapped through `earlier_lut` (its local ->
/// stitched IDs). Later calls override earlier ones for the same ID, as pyshepseg's dictionary
/// does.
pub fn recode_from_pairs(
    pairs: &[(u32, u32, u64)],
    earlier_lut: &[u32],
    compat: bool,
    recode: &mut HashMap<u32, Recode>,
) {
    let mut i = 0;
    let mut counts: Vec<(u32, u64)> = Vec::new();
    while i < pairs.len() {
        let id = pairs[i].0;
        counts.clear();
        while i < pairs.len() && pairs[i].0 == id {
            let g = earlier_lut.get(pairs[i].1 as usize).copied().unwrap_or(0);
            counts.push((g, pairs[i].2));
            i += 1;
        }
        counts.sort_unstable_by_key(|c| c.0);
        // The most common stitched ID under this segment; the first (smallest) wins ties.
        let mut best: Option<(u32, u64)> = None;
        let mut k = 0;
        while k < counts.len() {
            let g = counts[k].0;
            let mut n = 0;
            while k < counts.len() && counts[k].0 == g {
                n += counts[k].1;
                k += 1;
            }
            if (compat || g != 0) && best.is_none_or(|(_, m)| n > m) {
                best = Some((g, n));
            }
        }
        recode.insert(
            id,
            match best {
                Some((g, _)) => Recode::To(g),
                None => Recode::Fallback,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::blocky;
    use ndarray::{array, s};
    use shepseg_core::rng::SplitMix64;

    /// [`pair_counts`] as first written: each segment's extent across the midline, then every
    /// crossing pixel's pair, sorted and counted.
    fn pair_counts_oracle(
        current: ArrayView2<u32>,
        earlier: ArrayView2<u32>,
        side: Side,
    ) -> Vec<(u32, u32, u64)> {
        let (rows, cols) = current.dim();
        let mid = side.midline(rows, cols);
        let max = current.iter().copied().max().unwrap_or(0) as usize;
        let mut extent = vec![(usize::MAX, 0usize); max + 1];
        for ((r, c), &id) in current.indexed_iter() {
            let n = if side == Side::Top { r } else { c };
            let e = &mut extent[id as usize];
            e.0 = e.0.min(n);
            e.1 = e.1.max(n);
        }
        let mut pairs = Vec::new();
        for (&id, &b) in current.iter().zip(earlier.iter()) {
            let (lo, hi) = extent[id as usize];
            if id != 0 && lo < mid && hi >= mid {
                pairs.push(((u64::from(id) << 32) | u64::from(b), 1));
            }
        }
        summed_pairs(pairs)
    }

    #[test]
    fn pair_counts_equal_the_extent_oracle() {
        let mut rng = SplitMix64::new(11);
        for case in 0..2000 {
            let rows = 1 + rng.below(12);
            let cols = 1 + rng.below(12);
            let ids = 1 + rng.below(15);
            let current = blocky(&mut rng, rows, cols, ids);
            let earlier = blocky(&mut rng, rows, cols, ids);
            for side in [Side::Top, Side::Left] {
                assert_eq!(
                    pair_counts(current.view(), earlier.view(), side),
                    pair_counts_oracle(current.view(), earlier.view(), side),
                    "case {case}, {side:?}"
                );
            }
            // A strip cut out of a wider tile, as the left overlap is (rows not contiguous).
            let wide = blocky(&mut rng, rows, cols + 3, ids);
            let strip = wide.slice(s![.., ..cols]);
            assert_eq!(
                pair_counts(strip, earlier.view(), Side::Left),
                pair_counts_oracle(strip, earlier.view(), Side::Left),
                "case {case}, cut strip"
            );
        }
    }

    fn recode_of(
        current: ArrayView2<u32>,
        earlier: ArrayView2<u32>,
        lut: &[u32],
        side: Side,
        compat: bool,
        rec: &mut HashMap<u32, Recode>,
    ) {
        recode_from_pairs(&pair_counts(current, earlier, side), lut, compat, rec);
    }

    #[test]
    fn crossing_segments_take_the_most_common_earlier_id() {
        // 4-row top strip: segment 1 crosses row 2, segment 2 stays above it.
        let current = array![[1u32, 2], [1, 2], [1, 3], [1, 3]];
        let earlier = array![[7u32, 9], [7, 9], [8, 9], [7, 9]];
        let identity: Vec<u32> = (0..10).collect();
        let mut rec = HashMap::new();
        recode_of(
            current.view(),
            earlier.view(),
            &identity,
            Side::Top,
            false,
            &mut rec,
        );
        assert_eq!(rec.get(&1), Some(&Recode::To(7)));
        assert_eq!(rec.get(&2), None, "does not cross");
        assert_eq!(rec.get(&3), None, "does not cross: starts at the midline");
    }

    #[test]
    fn zero_wins_only_in_compat_mode() {
        let current = array![[1u32, 1], [1, 1]];
        let earlier = array![[0u32, 0], [5, 6]];
        let identity: Vec<u32> = (0..10).collect();
        let mut rec = HashMap::new();
        recode_of(
            current.view(),
            earlier.view(),
            &identity,
            Side::Left,
            true,
            &mut rec,
        );
        assert_eq!(rec[&1], Recode::To(0));
        recode_of(
            current.view(),
            earlier.view(),
            &identity,
            Side::Left,
            false,
            &mut rec,
        );
        assert_eq!(rec[&1], Recode::To(5), "ties go to the smallest ID");
        let zeros = array![[0u32, 0], [0, 0]];
        recode_of(
            current.view(),
            zeros.view(),
            &identity,
            Side::Left,
            false,
            &mut rec,
        );
        assert_eq!(rec[&1], Recode::Fallback);
    }

    #[test]
    fn counts_of_local_ids_sharing_a_stitched_id_add_up() {
        // Under segment 1: local 2 on four pixels, local 3 on two, local 4 on four. Locals 3 and 4
        // were both stitched to 50, local 2 to 40: 50 has six pixels and wins over 40's four.
        let current = array![[1u32, 1, 1, 1, 1], [1, 1, 1, 1, 1]];
        let earlier = array![[2u32, 2, 3, 4, 4], [2, 2, 3, 4, 4]];
        let lut = [0u32, 0, 40, 50, 50];
        let mut rec = HashMap::new();
        recode_of(
            current.view(),
            earlier.view(),
            &lut,
            Side::Top,
            false,
            &mut rec,
        );
        assert_eq!(rec[&1], Recode::To(50));
    }
}
