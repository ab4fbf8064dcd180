//! Where stitched pixels go: the [`TileSink`] trait, the blocks it takes, and [`MemorySink`].
//!
//! A sink has one write path and a finish. The stitcher maps each tile to a block of output IDs
//! and has it prepared as the sink asks ([`TileSink::block_prep`]: overview parts subsampled,
//! and, for a sink with its own compressed tile layout, compressed) on whatever thread is free;
//! the sink's [`TileSink::write`] then only stores what it is given, in order. How a sink stores
//! blocks (through GDAL, or as raw TIFF tiles) is its own business.

use std::sync::Arc;

use ndarray::{s, Array2};
use shepseg_tiling::{MosaicTiles, Window};

use crate::encode::{encode_block, EncodedBlock};
use crate::error::StitchError;
use crate::overview::{Overview, OverviewBlock};
use crate::rawtiff::TileEncoder;
use crate::stitcher::StitchReport;

/// The per-pixel work a sink asks for before its blocks are written. Any thread may run
/// [`BlockPrep::prepare`], so that the serial write only stores the result.
#[derive(Debug, Clone, Default)]
pub struct BlockPrep {
    overviews: Arc<[Overview]>,
    encoder: Option<TileEncoder>,
    /// For a mosaic output: every block is written as its own tile here, by the thread that
    /// prepares it.
    mosaic: Option<Arc<MosaicTiles>>,
}

impl BlockPrep {
    /// Blocks subsampled for these overviews, uncompressed.
    pub fn with_overviews(overviews: Vec<Overview>) -> Self {
        Self {
            overviews: overviews.into(),
            encoder: None,
            mosaic: None,
        }
    }

    /// Blocks written as tiles of a mosaic ([`MosaicTiles::write`]) as they are prepared.
    pub fn mosaic(tiles: Arc<MosaicTiles>) -> Self {
        Self {
            overviews: Vec::new().into(),
            encoder: None,
            mosaic: Some(tiles),
        }
    }

    /// Blocks subsampled for `overviews` and compressed into `encoder`'s tiles.
    pub(crate) fn encoded(overviews: Vec<Overview>, encoder: TileEncoder) -> Self {
        Self {
            overviews: overviews.into(),
            encoder: Some(encoder),
            mosaic: None,
        }
    }

    /// Prepares `block` (output IDs, 0 = null) for `window` of the output.
    pub fn prepare(&self, window: Window, block: Array2<u32>) -> Result<OutputBlock, StitchError> {
        if let Some(m) = &self.mosaic {
            match block.as_slice() {
                Some(labels) => m.write(window, labels)?,
                None => m.write(window, &block.iter().copied().collect::<Vec<_>>())?,
            };
            return Ok(OutputBlock {
                window,
                data: BlockData::Written,
            });
        }
        let overviews = self
            .overviews
            .iter()
            .map(|o| o.subsample(window, &block))
            .collect();
        let data = match &self.encoder {
            Some(enc) => BlockData::Encoded(encode_block(enc, window, &block, overviews)?),
            None => BlockData::Pixels { block, overviews },
        };
        Ok(OutputBlock { window, data })
    }
}

/// A block of output IDs, prepared for its sink, with the window it fills.
#[derive(Debug)]
pub struct OutputBlock {
    window: Window,
    data: BlockData,
}

/// A block's contents: pixels with their overview parts, or compressed for the sink's tiles.
#[derive(Debug)]
pub(crate) enum BlockData {
    Pixels {
        block: Array2<u32>,
        overviews: Vec<Option<OverviewBlock>>,
    },
    Encoded(EncodedBlock),
    /// Already written where the sink's prep said (a mosaic's tile).
    Written,
}

impl OutputBlock {
    /// The window of the output the block fills.
    pub fn window(&self) -> Window {
        self.window
    }

    /// The block's pixels and its part of each overview of the sink's [`BlockPrep`] (in order;
    /// `None` where an overview takes none of it). Blocks of a sink whose prep does not
    /// compress always have them.
    pub fn into_pixels(self) -> Result<(Array2<u32>, Vec<Option<OverviewBlock>>), StitchError> {
        match self.data {
            BlockData::Pixels { block, overviews } => Ok((block, overviews)),
            BlockData::Encoded(_) | BlockData::Written => Err(StitchError::Output(format!(
                "block {:?} was prepared for another sink",
                self.window
            ))),
        }
    }

    /// The contents, for this crate's sinks.
    pub(crate) fn into_data(self) -> BlockData {
        self.data
    }
}

/// Where stitched pixels go: the output raster, or anything else that stores blocks.
///
/// The stitcher calls [`TileSink::write`] once per tile with the tile's trimmed block of output
/// IDs, final when written, prepared by [`TileSink::block_prep`]; the blocks tile the raster
/// without overlap, in row-major order. When every block is written the caller calls
/// [`TileSink::finish`] with the stitch's report. An error from either stops the job and is
/// returned to the caller; a sink dropped unfinished leaves no finished-looking output behind.
pub trait TileSink {
    /// What a finished sink gives back (nothing for a file, the array for [`MemorySink`]).
    type Finished;

    /// How blocks are to be prepared before [`TileSink::write`]: by default as they are (no
    /// overviews, no compression).
    fn block_prep(&self) -> BlockPrep {
        BlockPrep::default()
    }

    /// Stores one block.
    fn write(&mut self, block: OutputBlock) -> Result<(), StitchError>;

    /// Ends the output once every block is written (attribute table, statistics, renaming
    /// into place for a file).
    fn finish(self, report: &StitchReport) -> Result<Self::Finished, StitchError>
    where
        Self: Sized;
}

/// A [`TileSink`] holding the whole output in memory: for tests, and for callers that want the
/// stitched segmentation as an array rather than a file.
#[derive(Debug, Clone, PartialEq)]
pub struct MemorySink(pub Array2<u32>);

impl MemorySink {
    /// An all-null output of `rows x cols`.
    pub fn new(rows: usize, cols: usize) -> Self {
        Self(Array2::zeros((rows, cols)))
    }
}

impl TileSink for MemorySink {
    type Finished = Array2<u32>;

    fn write(&mut self, block: OutputBlock) -> Result<(), StitchError> {
        let w = block.window();
        let (block, _) = block.into_pixels()?;
        let (rows, cols) = self.0.dim();
        if w.yoff + w.ysize > rows || w.xoff + w.xsize > cols || block.dim() != (w.ysize, w.xsize) {
            return Err(StitchError::Output(format!(
                "block {w:?} does not fit the {cols} x {rows} output"
            )));
        }
        self.0
            .slice_mut(s![w.yoff..w.yoff + w.ysize, w.xoff..w.xoff + w.xsize])
            .assign(&block);
        Ok(())
    }

    fn finish(self, _report: &StitchReport) -> Result<Array2<u32>, StitchError> {
        Ok(self.0)
    }
}
