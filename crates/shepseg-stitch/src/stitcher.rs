//! The stitcher: takes segmented tiles in row-major order and writes one raster of global IDs.
//!
//! For each tile, in the order of the grid: segments crossing the midline of the overlap with the
//! tile above or to the left take that tile's IDs ([`crate::recode`]); every other segment whose
//! bounding box starts inside the tile's trimmed area gets the next new ID; the tile is trimmed by
//! half the overlap on each inner side and handed to the [`TileSink`]. Its right and bottom
//! overlap strips (local IDs) and its lookup table are kept for the tiles that follow, and
//! dropped once used, so memory holds one row of strips, not the image.
//!
//! Stitching a tile is three steps: [`prepare`] (per pixel; needs only the tile and its
//! neighbours' strips, so it can run for many tiles in parallel), [`Stitcher::stitch_prepared`]
//! (per segment, in order), and [`map_block`] (per pixel, the block through the lookup table).
//!
//! With `compat` the result is pyshepseg's, defects included: pixels recoded to 0 at seams, and
//! IDs given to segments with no pixel in the output. Without it no valid pixel is left null
//! (0 is never a recode target; a seam segment with only unlabelled pixels under it gets a new ID,
//! counted as a fallback) and IDs never repeat. The IDs matched across overlaps are provisional;
//! an output ID is given to each the first time one of its pixels is written (in provisional
//! order within a tile), so the output holds exactly 1..N with no empty ID and no second pass, and
//! a single tile's IDs are the core's.

use std::collections::HashMap;

use ndarray::{s, Array2, ArrayView2};
use shepseg_tiling::{Tile, TileGrid, Window};

use crate::error::StitchError;
use crate::recode::{pair_counts, recode_from_pairs, Recode, Side};
use crate::sink::TileSink;

/// What a finished stitch reports.
#[derive(Debug, Clone, PartialEq)]
pub struct StitchReport {
    /// Pixel count per final ID (index 0, null, is 0).
    pub histogram: Vec<u64>,
    /// Largest ID in the output.
    pub num_segments: u32,
    /// Seam segments that had only unlabelled pixels under them and took a new ID.
    pub fallbacks: usize,
    /// IDs with no pixel in the output (only in compatibility mode, as pyshepseg leaves them).
    pub empty_ids: usize,
}

/// Where a tile is cut: the trimmed area `(top, bottom, left, right)` in tile pixels, and
/// whether it is last in its row or column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trim {
    /// First row kept.
    pub top: usize,
    /// Row after the last kept.
    pub bottom: usize,
    /// First column kept.
    pub left: usize,
    /// Column after the last kept.
    pub right: usize,
    /// Last tile of its grid row (no right strip kept).
    pub last_col: bool,
    /// Last tile of its grid column (no bottom strip kept).
    pub last_row: bool,
}

impl Trim {
    /// The trim of `tile` in `grid`: half the overlap off each inner side.
    pub fn of(grid: &TileGrid, tile: Tile) -> Self {
        let margin = grid.overlap() / 2;
        let w = tile.window;
        let last_row = tile.row + 1 == grid.nrows();
        let last_col = tile.col + 1 == grid.ncols();
        Self {
            top: if tile.row == 0 { 0 } else { margin },
            left: if tile.col == 0 { 0 } else { margin },
            bottom: if last_row { w.ysize } else { w.ysize - margin },
            right: if last_col { w.xsize } else { w.xsize - margin },
            last_col,
            last_row,
        }
    }

    /// The output window of the trimmed area of `tile`.
    pub fn window(&self, tile: Tile) -> Window {
        Window {
            xoff: tile.window.xoff + self.left,
            yoff: tile.window.yoff + self.top,
            xsize: self.right - self.left,
            ysize: self.bottom - self.top,
        }
    }
}

/// The per-pixel part of stitching one tile, which needs only the tile and the local IDs of its
/// neighbours' overlap strips, not the stitch so far: so it can be computed for many tiles in
/// parallel, ahead of the serial [`Stitcher::stitch_prepared`].
#[derive(Debug, Clone, PartialEq)]
pub struct TilePrep {
    /// Top-left corner of each local segment's bounding box (`usize::MAX`: absent).
    corner: Vec<(usize, usize)>,
    /// Pixels of each local segment inside the trimmed area.
    inside: Vec<u64>,
    /// Pair counts across the top overlap ([`pair_counts`]).
    top: Vec<(u32, u32, u64)>,
    /// Pair counts across the left overlap.
    left: Vec<(u32, u32, u64)>,
}

/// Prepares `tile` (segmentation `seg`, local IDs): `above` is the bottom overlap strip of the
/// tile above and `before` the right strip of the tile to the left (their local IDs, as
/// [`overlap_strips`] cuts them).
pub fn prepare(
    grid: &TileGrid,
    tile: Tile,
    seg: ArrayView2<u32>,
    above: Option<ArrayView2<u32>>,
    before: Option<ArrayView2<u32>>,
) -> TilePrep {
    let overlap = grid.overlap();
    let trim = Trim::of(grid, tile);
    let top = above
        .map(|a| pair_counts(seg.slice(s![..overlap, ..]), a, Side::Top))
        .unwrap_or_default();
    let left = before
        .map(|b| pair_counts(seg.slice(s![.., ..overlap]), b, Side::Left))
        .unwrap_or_default();
    let (corner, inside) = scan(seg, trim);
    TilePrep {
        corner,
        inside,
        top,
        left,
    }
}

/// The right and bottom overlap strips of `tile` (local IDs), which its right and lower
/// neighbours are matched against; `None` on the last column or row.
pub fn overlap_strips(
    grid: &TileGrid,
    tile: Tile,
    seg: ArrayView2<u32>,
) -> (Option<Array2<u32>>, Option<Array2<u32>>) {
    let overlap = grid.overlap();
    let trim = Trim::of(grid, tile);
    let (rows, cols) = seg.dim();
    (
        (!trim.last_col).then(|| seg.slice(s![.., cols - overlap..]).to_owned()),
        (!trim.last_row).then(|| seg.slice(s![rows - overlap.., ..]).to_owned()),
    )
}

/// Writes the trimmed area of `seg` through `out_lut` (local ID -> output ID).
pub fn map_block(seg: ArrayView2<u32>, trim: Trim, out_lut: &[u32]) -> Array2<u32> {
    seg.slice(s![trim.top..trim.bottom, trim.left..trim.right])
        .map(|&l| out_lut.get(l as usize).copied().unwrap_or(0))
}

/// The overlap strips (local IDs) kept for tiles still to come: the previous tile's right strip
/// and the previous grid row's bottom strips.
#[derive(Debug)]
pub(crate) struct KeptStrips<T> {
    right: Option<T>,
    bottoms: Vec<Option<T>>,
}

impl<T> KeptStrips<T> {
    /// Nothing kept yet, for a grid of `ncols` columns.
    pub(crate) fn new(ncols: usize) -> Self {
        Self {
            right: None,
            bottoms: (0..ncols).map(|_| None).collect(),
        }
    }

    /// Takes the strips `tile` is matched against: the one above and the one before it.
    pub(crate) fn take(&mut self, tile: Tile) -> Result<(Option<T>, Option<T>), StitchError> {
        let missing = || StitchError::MissingOverlap {
            col: tile.col,
            row: tile.row,
        };
        let above = if tile.row > 0 {
            Some(self.bottoms[tile.col].take().ok_or_else(missing)?)
        } else {
            None
        };
        let before = if tile.col > 0 {
            Some(self.right.take().ok_or_else(missing)?)
        } else {
            None
        };
        Ok((above, before))
    }

    /// Keeps `tile`'s own strips (`None` on the last column or row) for its neighbours.
    pub(crate) fn keep(&mut self, tile: Tile, right: Option<T>, bottom: Option<T>) {
        if right.is_some() {
            self.right = right;
        }
        if bottom.is_some() {
            self.bottoms[tile.col] = bottom;
        }
    }
}

/// The serial result for one tile: where its block goes and how to write it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stitched {
    /// The tile.
    pub tile: Tile,
    /// Its trim.
    pub trim: Trim,
    /// Local ID -> output ID, for [`map_block`].
    pub out_lut: Vec<u32>,
}

/// Stitches tiles pushed in row-major order; see the module docs.
pub struct Stitcher {
    grid: TileGrid,
    compat: bool,
    next: usize,
    max_id: u32,
    /// Overlap strips (local IDs) kept for [`Stitcher::push`].
    strips: KeptStrips<Array2<u32>>,
    /// Lookup table (local -> provisional) of the previous tile in this row.
    lut_left: Option<Vec<u32>>,
    /// Lookup table of each tile of the previous row, by column.
    luts_above: Vec<Option<Vec<u32>>>,
    histogram: Vec<u64>,
    fallbacks: usize,
    /// Output ID of each provisional ID (0: not written yet); unused in compatibility mode.
    output_id: Vec<u32>,
    /// Output IDs given so far.
    num_output: u32,
}

impl Stitcher {
    /// A stitcher for `grid`; `compat` reproduces pyshepseg exactly.
    pub fn new(grid: TileGrid, compat: bool) -> Self {
        let ncols = grid.ncols();
        Self {
            grid,
            compat,
            next: 0,
            max_id: 0,
            strips: KeptStrips::new(ncols),
            lut_left: None,
            luts_above: vec![None; ncols],
            histogram: vec![0],
            fallbacks: 0,
            output_id: vec![0],
            num_output: 0,
        }
    }

    /// The grid.
    pub fn grid(&self) -> &TileGrid {
        &self.grid
    }

    /// The tile the stitcher needs next, or `None` when all are done.
    pub fn next_tile(&self) -> Option<Tile> {
        self.grid.tiles().get(self.next).copied()
    }

    /// Checks that `seg` has the shape of `tile`'s window.
    pub fn check_shape(tile: Tile, seg: ArrayView2<u32>) -> Result<(), StitchError> {
        let w = tile.window;
        if seg.dim() != (w.ysize, w.xsize) {
            return Err(StitchError::TileShape {
                col: tile.col,
                row: tile.row,
                expected: (w.ysize, w.xsize),
                got: seg.dim(),
            });
        }
        Ok(())
    }

    /// Stitches the next tile in this thread: `seg` is its segmentation (local IDs from 1,
    /// 0 = null), the size of its window. ([`crate::ParallelStitcher`] does the per-pixel work
    /// on other threads.)
    pub fn push(
        &mut self,
        seg: ArrayView2<u32>,
        sink: &mut impl TileSink,
    ) -> Result<(), StitchError> {
        let tile = self.next_tile().ok_or(StitchError::TooManyTiles)?;
        Self::check_shape(tile, seg)?;
        let (above, before) = self.strips.take(tile)?;
        let prep = prepare(
            &self.grid,
            tile,
            seg,
            above.as_ref().map(|a| a.view()),
            before.as_ref().map(|b| b.view()),
        );
        let (right, bottom) = overlap_strips(&self.grid, tile, seg);
        self.strips.keep(tile, right, bottom);
        let done = self.stitch_prepared(&prep)?;
        let block = map_block(seg, done.trim, &done.out_lut);
        sink.write(sink.block_prep().prepare(done.trim.window(tile), block)?)
    }

    /// The serial, per-segment part of stitching the next tile, from its [`prepare`]d counts:
    /// matches its crossing segments with the earlier tiles' (through their lookup tables),
    /// gives provisional and output IDs, and adds its trimmed-area counts to the histogram.
    pub fn stitch_prepared(&mut self, prep: &TilePrep) -> Result<Stitched, StitchError> {
        let tile = self.next_tile().ok_or(StitchError::TooManyTiles)?;
        let trim = Trim::of(&self.grid, tile);
        let missing = || StitchError::MissingOverlap {
            col: tile.col,
            row: tile.row,
        };
        let mut recode: HashMap<u32, Recode> = HashMap::new();
        if tile.row > 0 {
            let lut = self.luts_above[tile.col].take().ok_or_else(missing)?;
            recode_from_pairs(&prep.top, &lut, self.compat, &mut recode);
        }
        if tile.col > 0 {
            let lut = self.lut_left.take().ok_or_else(missing)?;
            // The left match overrides the top one for a segment crossing both, as
            // pyshepseg's dictionary update does.
            recode_from_pairs(&prep.left, &lut, self.compat, &mut recode);
        }
        let lut = self.relabel(&recode, &prep.corner, trim);
        let inside = &prep.inside;
        // What each local ID is written as: its provisional ID (compat) or its output ID.
        let out_lut: Vec<u32> = if self.compat {
            lut.clone()
        } else {
            // Provisional IDs written for the first time get output IDs, in ascending order.
            if self.output_id.len() <= self.max_id as usize {
                self.output_id.resize(self.max_id as usize + 1, 0);
            }
            let mut fresh: Vec<u32> = (1..lut.len())
                .filter(|&l| inside[l] > 0 && lut[l] != 0 && self.output_id[lut[l] as usize] == 0)
                .map(|l| lut[l])
                .collect();
            fresh.sort_unstable();
            fresh.dedup();
            for v in fresh {
                self.num_output += 1;
                self.output_id[v as usize] = self.num_output;
            }
            lut.iter().map(|&g| self.output_id[g as usize]).collect()
        };
        // Histogram and largest ID written, from the per-segment counts inside the trimmed area.
        let written_max = (1..out_lut.len())
            .filter(|&l| inside[l] > 0)
            .map(|l| out_lut[l])
            .max()
            .unwrap_or(0);
        if self.compat {
            // pyshepseg moves on from the largest ID actually written.
            self.max_id = self.max_id.max(written_max);
        }
        if self.histogram.len() <= written_max as usize {
            self.histogram.resize(written_max as usize + 1, 0);
        }
        for (l, &n) in inside.iter().enumerate().skip(1) {
            if n > 0 && out_lut[l] != 0 {
                self.histogram[out_lut[l] as usize] += n;
            }
        }
        // Later tiles match against this one's local IDs through its lookup table.
        if !trim.last_col {
            self.lut_left = Some(lut.clone());
        }
        if !trim.last_row {
            self.luts_above[tile.col] = Some(lut);
        }
        self.next += 1;
        Ok(Stitched {
            tile,
            trim,
            out_lut,
        })
    }

    /// Gives the tile's segments their provisional IDs (pyshepseg's `relabelSegments`, plus
    /// fallbacks): the lookup table from local IDs, from each segment's bounding-box corner and
    /// its recode.
    fn relabel(
        &mut self,
        recode: &HashMap<u32, Recode>,
        corner: &[(usize, usize)],
        trim: Trim,
    ) -> Vec<u32> {
        let mut lut = vec![0u32; corner.len()];
        let mut next = self.max_id;
        for (id, &(r0, c0)) in corner.iter().enumerate().skip(1) {
            if r0 == usize::MAX {
                continue;
            }
            lut[id] = match recode.get(&(id as u32)) {
                Some(Recode::To(g)) => *g,
                Some(Recode::Fallback) => {
                    self.fallbacks += 1;
                    next += 1;
                    next
                }
                None if c0 >= trim.left
                    && r0 >= trim.top
                    && c0 < trim.right
                    && r0 < trim.bottom =>
                {
                    next += 1;
                    next
                }
                None => 0,
            };
        }
        if !self.compat {
            self.max_id = next;
        }
        lut
    }

    /// Ends the stitch: every tile must have been pushed.
    pub fn finish(mut self) -> Result<StitchReport, StitchError> {
        if self.next != self.grid.tiles().len() {
            return Err(StitchError::Unfinished {
                done: self.next,
                total: self.grid.tiles().len(),
            });
        }
        if !self.compat {
            self.histogram.resize(self.num_output as usize + 1, 0);
        }
        let empty_ids = self.histogram[1..].iter().filter(|&&n| n == 0).count();
        Ok(StitchReport {
            num_segments: (self.histogram.len() - 1) as u32,
            histogram: self.histogram,
            fallbacks: self.fallbacks,
            empty_ids,
        })
    }
}

/// The top-left corner of each local segment's bounding box, and its pixels inside the trimmed
/// area.
fn scan(seg: ArrayView2<u32>, trim: Trim) -> (Vec<(usize, usize)>, Vec<u64>) {
    let local_max = seg.iter().copied().max().unwrap_or(0) as usize;
    let mut corner = vec![(usize::MAX, usize::MAX); local_max + 1];
    let mut inside = vec![0u64; local_max + 1];
    // Run by run along each row, not pixel by pixel: a per-pixel update of the segment's
    // entry would wait on the previous pixel's, usually the same segment's.
    for (r, row) in seg.outer_iter().enumerate() {
        let in_rows = r >= trim.top && r < trim.bottom;
        let mut iter = row.iter().copied().enumerate().peekable();
        while let Some((start, id)) = iter.next() {
            let mut end = start + 1;
            while iter.next_if(|&(_, v)| v == id).is_some() {
                end += 1;
            }
            let e = &mut corner[id as usize];
            if e.0 == usize::MAX {
                e.0 = r;
            }
            e.1 = e.1.min(start);
            if in_rows {
                let (lo, hi) = (start.max(trim.left), end.min(trim.right));
                inside[id as usize] += hi.saturating_sub(lo) as u64;
            }
        }
    }
    inside[0] = 0;
    (corner, inside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::blocky;
    use shepseg_core::rng::SplitMix64;

    /// [`scan`] as first written, pixel by pixel.
    fn scan_oracle(seg: ArrayView2<u32>, trim: Trim) -> (Vec<(usize, usize)>, Vec<u64>) {
        let local_max = seg.iter().copied().max().unwrap_or(0) as usize;
        let mut corner = vec![(usize::MAX, usize::MAX); local_max + 1];
        let mut inside = vec![0u64; local_max + 1];
        for ((r, c), &id) in seg.indexed_iter() {
            let e = &mut corner[id as usize];
            e.0 = e.0.min(r);
            e.1 = e.1.min(c);
            if r >= trim.top && r < trim.bottom && c >= trim.left && c < trim.right {
                inside[id as usize] += 1;
            }
        }
        inside[0] = 0;
        (corner, inside)
    }

    #[test]
    fn scan_equals_the_pixel_oracle() {
        let mut rng = SplitMix64::new(5);
        for case in 0..2000 {
            let (rows, cols) = (1 + rng.below(14), 1 + rng.below(14));
            let ids = 1 + rng.below(20);
            let seg = blocky(&mut rng, rows, cols, ids);
            let (top, left) = (rng.below(rows), rng.below(cols));
            let trim = Trim {
                top,
                bottom: top + rng.below(rows - top + 1),
                left,
                right: left + rng.below(cols - left + 1),
                last_col: false,
                last_row: false,
            };
            assert_eq!(
                scan(seg.view(), trim),
                scan_oracle(seg.view(), trim),
                "case {case}"
            );
        }
    }
}
