//! Compressing a block for a sink that stores its own compressed tiles: the per-pixel half of
//! a compressed write, which any thread can do (see [`crate::sink::BlockPrep`]).

use ndarray::Array2;
use shepseg_tiling::Window;

use crate::error::StitchError;
use crate::overview::OverviewBlock;
use crate::rawtiff::{zstd_compress, zstd_decompress, EncodedTiles, TileEncoder};

/// A block compressed for a sink's own tile layout, with its overview parts compressed too.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedBlock {
    /// The block's full-resolution tiles.
    pub tiles: EncodedTiles,
    /// Per overview of [`TileSink::overviews`], its part: `(column, row)` of the overview it
    /// starts at, `(rows, cols)`, and the pixels as one ZSTD frame.
    pub overviews: Vec<Option<EncodedOverview>>,
}

/// One overview part of an [`EncodedBlock`].
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedOverview {
    /// Column of the overview the part starts at.
    pub xoff: usize,
    /// Row of the overview the part starts at.
    pub yoff: usize,
    /// `(rows, cols)`.
    pub dim: (usize, usize),
    /// The pixels, row-major, as one ZSTD frame.
    pub frame: Vec<u8>,
}

impl EncodedOverview {
    /// The part's pixels.
    pub fn decode(&self) -> Result<Array2<u32>, StitchError> {
        let values = zstd_decompress(&self.frame, self.dim.0 * self.dim.1)?;
        Array2::from_shape_vec(self.dim, values)
            .map_err(|e| StitchError::Output(format!("overview part: {e}")))
    }
}

/// Compresses `block` (at `window`) into `encoder`'s tiles and its overview parts `subs`
/// (from [`Overview::subsample`]) into frames: the per-pixel half of a compressed write, which
/// any thread can do.
pub fn encode_block(
    encoder: &TileEncoder,
    window: Window,
    block: &Array2<u32>,
    subs: Vec<Option<OverviewBlock>>,
) -> Result<EncodedBlock, StitchError> {
    let tiles = encoder.encode(window, block)?;
    let overviews = subs
        .into_iter()
        .map(|sub| {
            sub.map(|o| {
                let dim = o.block.dim();
                let frame = match o.block.as_slice() {
                    Some(values) => zstd_compress(values, encoder.level)?,
                    None => {
                        zstd_compress(&o.block.iter().copied().collect::<Vec<_>>(), encoder.level)?
                    }
                };
                Ok(EncodedOverview {
                    xoff: o.xoff,
                    yoff: o.yoff,
                    dim,
                    frame,
                })
            })
            .transpose()
        })
        .collect::<Result<_, StitchError>>()?;
    Ok(EncodedBlock { tiles, overviews })
}
