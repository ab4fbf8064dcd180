//! The tile grid: overlapping tiles covering a raster, exactly as pyshepseg's `getTilesForFile`.
//!
//! Tiles start every `tile_size - overlap` pixels. The last tile of each row and column grows to
//! the raster's edge instead of leaving a sliver: a tile is cut short only when a full tile and
//! another after it would not fit. Tiles are numbered by grid column and row from 0, and listed in
//! row-major order, the order the stitcher consumes them.
//!
//! ```
//! use shepseg_tiling::TileGrid;
//! let g = TileGrid::new(515, 403, 128, 32).unwrap();
//! assert_eq!((g.ncols(), g.nrows()), (4, 3));
//! let last = g.tile(3, 2).unwrap().window;
//! assert_eq!((last.xoff, last.yoff, last.xsize, last.ysize), (288, 192, 227, 211));
//! ```

use crate::error::TilingError;
use crate::raster::Window;

/// One tile: its grid position and its pixel window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// Grid column, from 0.
    pub col: usize,
    /// Grid row, from 0.
    pub row: usize,
    /// Pixels covered, overlaps included.
    pub window: Window,
}

/// The tiles of one raster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileGrid {
    tiles: Vec<Tile>,
    ncols: usize,
    nrows: usize,
    tile_size: usize,
    overlap: usize,
}

impl TileGrid {
    /// The grid for a `cols x rows` raster. The overlap must be even and smaller than the tile.
    pub fn new(
        cols: usize,
        rows: usize,
        tile_size: usize,
        overlap: usize,
    ) -> Result<Self, TilingError> {
        if tile_size == 0 {
            return Err(TilingError::TileGrid("tile size must be at least 1".into()));
        }
        // GDAL addresses windows with C ints.
        if tile_size > i32::MAX as usize {
            return Err(TilingError::TileGrid(format!(
                "tile size must be at most {}, got {tile_size}",
                i32::MAX
            )));
        }
        if !overlap.is_multiple_of(2) {
            return Err(TilingError::TileGrid(format!(
                "overlap must be even, got {overlap}"
            )));
        }
        if overlap >= tile_size {
            return Err(TilingError::TileGrid(format!(
                "overlap ({overlap}) must be smaller than the tile size ({tile_size})"
            )));
        }
        let step = tile_size - overlap;
        let mut tiles = Vec::new();
        let (mut ypos, mut row, mut ncols) = (0usize, 0usize, 0usize);
        'rows: loop {
            let mut ysize = tile_size;
            let mut last_row = false;
            if ypos + ysize * 2 > rows {
                ysize = rows - ypos;
                last_row = true;
                if ysize == 0 {
                    break 'rows;
                }
            }
            let (mut xpos, mut col) = (0usize, 0usize);
            loop {
                let mut xsize = tile_size;
                let mut last_col = false;
                if xpos + xsize * 2 > cols {
                    xsize = cols - xpos;
                    last_col = true;
                    if xsize == 0 {
                        break;
                    }
                }
                tiles.push(Tile {
                    col,
                    row,
                    window: Window {
                        xoff: xpos,
                        yoff: ypos,
                        xsize,
                        ysize,
                    },
                });
                xpos += step;
                col += 1;
                if last_col {
                    break;
                }
            }
            ncols = col;
            ypos += step;
            row += 1;
            if last_row {
                break;
            }
        }
        Ok(Self {
            tiles,
            ncols,
            nrows: row,
            tile_size,
            overlap,
        })
    }

    /// The rows of `block`-pixel blocks of a `cols x rows` raster, each one tile the width of
    /// the raster (the last one shorter): the units of work of a sample read apart.
    pub fn block_rows(cols: usize, rows: usize, block: usize) -> Result<Self, TilingError> {
        if block == 0 || cols == 0 || rows == 0 {
            return Err(TilingError::TileGrid(format!(
                "no rows of {block}-pixel blocks in a {cols} x {rows} raster"
            )));
        }
        let tiles: Vec<Tile> = (0..rows.div_ceil(block))
            .map(|row| Tile {
                col: 0,
                row,
                window: Window {
                    xoff: 0,
                    yoff: row * block,
                    xsize: cols,
                    ysize: block.min(rows - row * block),
                },
            })
            .collect();
        Ok(Self {
            nrows: tiles.len(),
            tiles,
            ncols: 1,
            tile_size: block,
            overlap: 0,
        })
    }

    /// All tiles, row-major.
    pub fn tiles(&self) -> &[Tile] {
        &self.tiles
    }

    /// The tile at grid column `col`, row `row` (`None` outside the grid, or left out of a
    /// [`TileGrid::subset`]).
    pub fn tile(&self, col: usize, row: usize) -> Option<&Tile> {
        if col >= self.ncols || row >= self.nrows {
            return None;
        }
        if self.tiles.len() == self.ncols * self.nrows {
            return self.tiles.get(row * self.ncols + col);
        }
        self.tiles
            .binary_search_by_key(&(row, col), |t| (t.row, t.col))
            .ok()
            .and_then(|i| self.tiles.get(i))
    }

    /// The same grid with only the tiles for which `keep` (given each tile's row-major index)
    /// is true: the tiles a resumed job still has to segment. Executors run any grid's
    /// [`TileGrid::tiles`]; each tile keeps its `col` and `row`.
    pub fn subset(&self, keep: impl Fn(usize) -> bool) -> TileGrid {
        TileGrid {
            tiles: self
                .tiles
                .iter()
                .enumerate()
                .filter(|&(i, _)| keep(i))
                .map(|(_, &t)| t)
                .collect(),
            ..*self
        }
    }

    /// Tiles per row.
    pub fn ncols(&self) -> usize {
        self.ncols
    }

    /// Rows of tiles.
    pub fn nrows(&self) -> usize {
        self.nrows
    }

    /// Nominal tile size.
    pub fn tile_size(&self) -> usize {
        self.tile_size
    }

    /// Overlap between neighbouring tiles.
    pub fn overlap(&self) -> usize {
        self.overlap
    }

    /// The order in which `workers` workers should start the tiles (indices into
    /// [`TileGrid::tiles`]), and how many of its first entries are *lead* tiles started out of
    /// turn. Row-major, the order the stitcher takes them, except that with more than one
    /// worker the last tile leads: it is the corner tile, which grows in both directions (up to
    /// nearly four times another tile's area), and started last it leaves one worker finishing
    /// the job alone while the others idle. Started first, it waits finished for the stitcher,
    /// one tile more held in memory for the job.
    pub fn dispatch_order(&self, workers: usize) -> (Vec<usize>, usize) {
        let n = self.tiles.len();
        if workers <= 1 || n <= workers {
            return ((0..n).collect(), 0);
        }
        let order = std::iter::once(n - 1).chain(0..n - 1).collect();
        (order, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_sizes_are_rejected_with_the_option_named() {
        let e = TileGrid::new(100, 100, 64, 15).unwrap_err().to_string();
        assert!(e.contains("overlap") && e.contains("even"), "{e}");
        let e = TileGrid::new(100, 100, 64, 64).unwrap_err().to_string();
        assert!(e.contains("smaller than the tile size"), "{e}");
        assert!(TileGrid::new(100, 100, 0, 0).is_err());
    }

    #[test]
    fn small_image_is_one_tile() {
        let g = TileGrid::new(50, 30, 4096, 1024).unwrap();
        assert_eq!(g.tiles().len(), 1);
        assert_eq!(
            g.tiles()[0].window,
            Window {
                xoff: 0,
                yoff: 0,
                xsize: 50,
                ysize: 30
            }
        );
    }

    #[test]
    fn the_corner_tile_leads_when_workers_share_the_grid() {
        let g = TileGrid::new(1000, 700, 128, 32).unwrap();
        let n = g.tiles().len();
        assert_eq!(g.dispatch_order(1), ((0..n).collect(), 0));
        let (order, lead) = g.dispatch_order(3);
        assert_eq!(lead, 1);
        assert_eq!(order[0], n - 1);
        assert_eq!(&order[1..], &(0..n - 1).collect::<Vec<_>>()[..]);
        let one = TileGrid::new(50, 30, 4096, 1024).unwrap();
        assert_eq!(one.dispatch_order(4), (vec![0], 0));
    }

    #[test]
    fn tiles_cover_the_raster() {
        for (c, r, t, o) in [
            (1000, 700, 128, 32),
            (8000, 8000, 2048, 512),
            (300, 300, 100, 0),
        ] {
            let g = TileGrid::new(c, r, t, o).unwrap();
            let last = g.tile(g.ncols() - 1, g.nrows() - 1).unwrap().window;
            assert_eq!(last.xoff + last.xsize, c);
            assert_eq!(last.yoff + last.ysize, r);
            assert_eq!(g.tiles().len(), g.ncols() * g.nrows());
        }
    }
}
