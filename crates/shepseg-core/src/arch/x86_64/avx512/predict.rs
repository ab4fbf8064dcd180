//! Image prediction sixteen pixels a 512-bit vector: every centre scored for every pixel by the
//! AVX-512 `f32` screen, and the pixels it leaves uncertain searched again exactly, so the labels
//! are scikit-learn's.

use crate::image::Img;
use crate::kmeans::Predictor;
use crate::pixel::Pixel;

/// The vector prediction of an `NB`-band image ([`Predictor::predict_lanes`]) with this
/// instruction set's `f32` screen ([`super::screen::screen`]), compiled with it.
#[target_feature(enable = "avx512f")]
pub(crate) fn predict<T: Pixel, const NB: usize>(
    p: &Predictor,
    img: &Img<T>,
    null: Option<T>,
) -> Vec<u32> {
    p.predict_lanes::<T, NB>(img, null, |xs| super::screen::screen::<NB>(&p.f32c, xs))
}
