//! Image prediction eight pixels a 256-bit vector, for CPUs without AVX-512: the AVX2 `f32`
//! screen, then the exact search for the pixels it leaves uncertain; the same labels as the
//! AVX-512 prediction.

use crate::image::Img;
use crate::kmeans::Predictor;
use crate::pixel::Pixel;

/// The vector prediction of an `NB`-band image ([`Predictor::predict_lanes`]) with this
/// instruction set's `f32` screen ([`super::screen::screen`]), compiled with it.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn predict<T: Pixel, const NB: usize>(
    p: &Predictor,
    img: &Img<T>,
    null: Option<T>,
) -> Vec<u32> {
    p.predict_lanes::<T, NB>(img, null, |xs| super::screen::screen::<NB>(&p.f32c, xs))
}
