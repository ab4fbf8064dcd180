//! Random test images shared by the integration tests.

use ndarray::Array3;
use shepseg_core::{KMeansModel, MaxSpectralDiff, Pixel, SegmentParams};

/// A deterministic generator for the test images.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Blocky random images with noise: segments of every size, single pixels, ties.
pub fn image<T: Pixel>(
    rng: &mut Rng,
    bands: usize,
    rows: usize,
    cols: usize,
    conv: impl Fn(u64) -> T,
) -> Array3<T> {
    let block = 1 + rng.below(5) as usize;
    let levels = 2 + rng.below(6);
    let noise = rng.below(3);
    let base: Vec<u64> = (0..bands * (rows / block + 1) * (cols / block + 1))
        .map(|_| rng.below(levels) * 10)
        .collect();
    Array3::from_shape_fn((bands, rows, cols), |(b, r, c)| {
        let k = (b * (rows / block + 1) + r / block) * (cols / block + 1) + c / block;
        conv(base[k] + rng_at(b, r, c) % (noise + 1))
    })
}

/// Position-hashed noise (the closure above cannot borrow the generator).
pub fn rng_at(b: usize, r: usize, c: usize) -> u64 {
    let mut x = (b as u64) << 40 ^ (r as u64) << 20 ^ c as u64;
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^ (x >> 29)
}

/// A model with `k` centres spread over the image's range, so clusters have every size.
pub fn model(rng: &mut Rng, bands: usize, k: usize) -> KMeansModel {
    let centres = (0..k)
        .map(|_| (0..bands).map(|_| rng.below(60) as f64).collect())
        .collect();
    KMeansModel::new(centres).unwrap()
}

/// A random test case: an image of 1-5 bands and up to `max_side` pixels a side, with up to
/// `max_nulls` null values (with `null`), a model and default-mode parameters of every kind.
pub fn random_case<T: Pixel>(
    rng: &mut Rng,
    (max_side, max_nulls): (u64, u64),
    conv: impl Fn(u64) -> T,
    null: Option<T>,
) -> (Array3<T>, SegmentParams, KMeansModel) {
    let bands = 1 + rng.below(5) as usize;
    let rows = 1 + rng.below(max_side) as usize;
    let cols = 1 + rng.below(max_side) as usize;
    let mut img = image(rng, bands, rows, cols, &conv);
    if let Some(n) = null {
        for _ in 0..rng.below(max_nulls) {
            let (r, c) = (
                rng.below(rows as u64) as usize,
                rng.below(cols as u64) as usize,
            );
            img[[rng.below(bands as u64) as usize, r, c]] = n;
        }
    }
    let k = 2 + rng.below(8) as usize;
    let m = model(rng, bands, k);
    let params = SegmentParams {
        num_clusters: k,
        min_segment_size: [2, 3, 5, 8, 13, 50][rng.below(6) as usize],
        max_spectral_diff: [
            MaxSpectralDiff::Auto,
            MaxSpectralDiff::Unlimited,
            MaxSpectralDiff::Value(4.0),
            MaxSpectralDiff::Value(25.0),
        ][rng.below(4) as usize],
        four_connected: rng.below(2) == 0,
        ..Default::default()
    };
    (img, params, m)
}
