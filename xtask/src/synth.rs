//! A deterministic synthetic multispectral image with land-cover-like structure, for benchmarks
//! and demos: irregular patches (a jittered Voronoi tessellation) of a dozen cover classes with
//! distinct 4-band signatures, a gentle illumination gradient, per-patch offsets and pixel noise.

use ndarray::Array3;
use shepseg_core::rng::SplitMix64;

/// Spectral signatures (blue, green, red, NIR) of the cover classes, in reflectance x 10000.
const CLASSES: [[f64; 4]; 12] = [
    [450.0, 600.0, 400.0, 3500.0],    // dense vegetation
    [500.0, 700.0, 600.0, 2800.0],    // pasture
    [600.0, 800.0, 900.0, 2200.0],    // crop
    [700.0, 900.0, 1100.0, 1600.0],   // dry grass
    [300.0, 350.0, 250.0, 150.0],     // water
    [900.0, 1000.0, 1100.0, 1300.0],  // urban
    [1200.0, 1300.0, 1500.0, 1800.0], // bare soil
    [400.0, 550.0, 450.0, 2900.0],    // forest
    [800.0, 900.0, 1000.0, 2000.0],   // shrub
    [1500.0, 1600.0, 1700.0, 1900.0], // sand
    [350.0, 500.0, 380.0, 3100.0],    // wet vegetation
    [650.0, 750.0, 820.0, 1200.0],    // road / rock
];

/// Generates a `(4, size, size)` UInt16 image from `seed`; the same seed gives the same image.
pub fn landcover(size: usize, seed: u64) -> Array3<u16> {
    const CELL: usize = 48;
    let cells = size.div_ceil(CELL) + 1;
    let mut rng = SplitMix64::new(seed);
    // One seed point per cell, with a class and a per-patch brightness offset.
    let mut points = Vec::with_capacity(cells * cells);
    for cy in 0..cells {
        for cx in 0..cells {
            let x = (cx * CELL) as f64 + rng.next_f64() * CELL as f64;
            let y = (cy * CELL) as f64 + rng.next_f64() * CELL as f64;
            let class = rng.below(CLASSES.len());
            let offset = (rng.next_f64() - 0.5) * 300.0;
            points.push((x, y, class, offset));
        }
    }
    let mut img = Array3::<u16>::zeros((4, size, size));
    let mut noise = SplitMix64::new(seed ^ 0x5EED);
    for r in 0..size {
        for c in 0..size {
            let (cx, cy) = (c / CELL, r / CELL);
            let mut best = (f64::INFINITY, 0usize);
            for ny in cy.saturating_sub(1)..=(cy + 1).min(cells - 1) {
                for nx in cx.saturating_sub(1)..=(cx + 1).min(cells - 1) {
                    let (px, py, _, _) = points[ny * cells + nx];
                    // Anisotropic distance gives elongated, field-like patches.
                    let d = (px - c as f64).powi(2) + 1.6 * (py - r as f64).powi(2);
                    if d < best.0 {
                        best = (d, ny * cells + nx);
                    }
                }
            }
            let (_, _, class, offset) = points[best.1];
            let gradient = 1.0 + 0.15 * (r as f64 / size as f64) - 0.1 * (c as f64 / size as f64);
            for b in 0..4 {
                // Sum of uniforms: roughly Gaussian noise of sd ~ 60.
                let n: f64 = (0..3).map(|_| noise.next_f64()).sum::<f64>() - 1.5;
                let v = (CLASSES[class][b] + offset) * gradient + n * 120.0;
                img[[b, r, c]] = v.clamp(1.0, 65534.0) as u16;
            }
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic() {
        assert_eq!(landcover(100, 7), landcover(100, 7));
        assert_ne!(landcover(100, 7), landcover(100, 8));
    }
}
