//! Scalar loops compiled with FMA, so that `mul_add` is one instruction rather than a call into
//! libm. Fused multiply-add is exactly specified, so they give the plain build's results; they
//! run where [`crate::cpu::has_fma`] says the CPU has it.

use crate::image::Img;
use crate::kmeans::lloyd::hamerly::{Block, Geometry, Moved};
use crate::kmeans::{Data, Predictor};
use crate::pixel::Pixel;

/// [`Predictor::predict_image_pruned`]'s loop compiled with hardware FMA, so `mul_add` is one
/// instruction rather than a call into libm; the results are identical (FMA is exactly
/// specified).
///
/// # Safety
/// The CPU must support FMA.
#[target_feature(enable = "fma")]
pub(crate) unsafe fn predict_image_pruned<T: Pixel>(
    p: &Predictor,
    img: &Img<T>,
    null: Option<T>,
) -> Vec<u32> {
    p.predict_image_bands(img, null)
}

/// [`Block::step`] compiled with FMA (see [`Block::step_any`]).
///
/// # Safety
/// The CPU must support FMA.
#[target_feature(enable = "fma")]
pub(crate) unsafe fn lloyd_step<const NB: usize>(block: &mut Block, moved: &Moved) -> bool {
    block.step::<NB>(moved)
}

/// [`Block::all`] compiled with FMA (see [`Block::all_any`]).
///
/// # Safety
/// The CPU must support FMA.
#[target_feature(enable = "fma")]
pub(crate) unsafe fn lloyd_all<const NB: usize>(block: &mut Block, d: &Data, geo: &Geometry) {
    block.all::<NB>(d, geo)
}
