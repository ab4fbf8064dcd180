//! Overviews: pyshepseg's levels, and the part of each stitched block an overview takes, so
//! overviews are written tile by tile as the stitch goes (NEAREST subsampling) instead of in a
//! pass over the finished raster.

use ndarray::{s, Array2};
use shepseg_tiling::Window;

/// pyshepseg's overview levels for an image whose larger side is `size`.
pub fn overview_levels(size: usize) -> Vec<usize> {
    let mut levels = Vec::new();
    let mut i = 2;
    let mut ok = size >> i >= 1024;
    while ok {
        levels.push(1usize << i);
        ok = size >> i >= 1024;
        i += 1;
    }
    levels
}

/// An overview a sink keeps: every `level`-th pixel from `level / 2` in, as pyshepseg
/// subsamples, `cols x rows` in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overview {
    /// The reduction factor.
    pub level: usize,
    /// Columns of the overview.
    pub cols: usize,
    /// Rows of the overview.
    pub rows: usize,
}

/// The part of one block that goes into one overview, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct OverviewBlock {
    /// Column of the overview the block starts at.
    pub xoff: usize,
    /// Row of the overview the block starts at.
    pub yoff: usize,
    /// The subsampled pixels.
    pub block: Array2<u32>,
}

impl Overview {
    /// The pixels of `block` (at `window` of the output) that this overview takes, or `None`
    /// if it takes none: rows and columns `level / 2, level / 2 + level, ...` of the block,
    /// placed at the window's offset divided by the level (pyshepseg's tile-by-tile
    /// overviews) and clipped to the overview.
    pub fn subsample(&self, window: Window, block: &Array2<u32>) -> Option<OverviewBlock> {
        let lvl = self.level.max(1);
        let o = lvl / 2;
        let (xoff, yoff) = (window.xoff / lvl, window.yoff / lvl);
        if o >= block.nrows() || o >= block.ncols() || xoff >= self.cols || yoff >= self.rows {
            return None;
        }
        let sub = block.slice(s![o..;lvl, o..;lvl]);
        let (nr, nc) = (
            sub.nrows().min(self.rows - yoff),
            sub.ncols().min(self.cols - xoff),
        );
        Some(OverviewBlock {
            xoff,
            yoff,
            block: sub.slice(s![..nr, ..nc]).to_owned(),
        })
    }
}
