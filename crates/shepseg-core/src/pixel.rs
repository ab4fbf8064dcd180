//! Pixel types the segmentation accepts, and the per-type arithmetic pyshepseg uses on them.
//!
//! pyshepseg runs its loops in numba, whose type rules decide the exact arithmetic: the
//! single-pixel distance is computed in `int64` for integer images and in `float32` for float
//! images, and the per-segment spectral sums are `float32`, with integer pixels of 32 bits added
//! in `float64` and rounded back (numpy's promotion of `float32` with `int32`/`uint32`). Keeping
//! each of those rules here, per type, is what lets the core reproduce pyshepseg bit for bit.

/// A pixel value type that shepseg can segment: `u8`, `i8`, `u16`, `i16`, `u32`, `i32`,
/// `u64`, `i64`, `f32` or `f64`.
///
/// The trait is sealed; its methods encode the arithmetic pyshepseg applies to each type.
pub trait Pixel:
    Copy + PartialEq + Send + Sync + std::fmt::Debug + 'static + sealed::Sealed
{
    /// Accumulator of the single-pixel spectral distance (`i64` for integers, `f32` for floats).
    type Dist: Copy + PartialOrd + std::fmt::Debug;

    /// The value as `f64`: exact for every type but 64-bit integers beyond 2^53 (k-means and
    /// means work in `f64`, as scikit-learn's and numpy's do; sums stay exact, see
    /// [`Pixel::exact`]).
    fn to_f64(self) -> f64;

    /// Whether this value marks a null pixel, given the image's null value (`NaN` and the
    /// infinities are always null for floats: no spectrum can be measured from them, and one
    /// would make every k-means centre and distance it touches infinite or `NaN`).
    fn is_null(self, null: Option<Self>) -> bool;

    /// `sum + self` as pyshepseg's `float32` spectral sums compute it.
    fn add_to_f32_sum(self, sum: f32) -> f32;

    /// The value as the default mode's exact spectral sums add it: the integer itself, or for
    /// `f32` the value in units of [`Pixel::EXACT_UNIT`] (2^-40, truncated toward zero, so
    /// exact from 2^-17 up). Integer addition does not depend on order, so a segment's sums
    /// are the same however its pixels are visited, tile by tile or in one scan.
    fn exact(self) -> i128;

    /// What one unit of [`Pixel::exact`] is worth: 1 for integers, 2^-40 for `f32`.
    const EXACT_UNIT: f64;

    /// Whether exact sums of up to 2^32 pixels fit an `i64` (types of 16 bits and less), so
    /// that they can be kept in half the memory.
    const EXACT_FITS_I64: bool;

    /// The zero of [`Pixel::Dist`].
    const DIST_ZERO: Self::Dist;
    /// The "not yet set" marker (-1) pyshepseg starts its nearest-pixel search with.
    const DIST_UNSET: Self::Dist;

    /// Adds `(a - b)^2` to `acc`, in pyshepseg's single-pixel distance arithmetic.
    fn add_sq_diff(acc: Self::Dist, a: Self, b: Self) -> Self::Dist;

    /// A distance as an `i64` that orders as the distance does (the value itself for
    /// integers; for `f32`, whose distances are never negative, its bits), so that a tiled
    /// run can send distances between tiles without the pixel type.
    fn dist_bits(d: Self::Dist) -> i64;

    /// Centre `i` of `k` on the diagonal of the sample's bounding box in one band, computed as
    /// pyshepseg's `diagonalClusterCentres` does in numpy: `min + (i + 1) * (max - min) / (k + 1)`
    /// in the image's own dtype rules (`float64` then truncation for integers, `float32` for
    /// floats; the integer difference wraps as numpy's does).
    fn diagonal_centre(min: Self, max: Self, i: usize, k: usize) -> Self;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for i8 {}
    impl Sealed for u16 {}
    impl Sealed for i16 {}
    impl Sealed for u32 {}
    impl Sealed for i32 {}
    impl Sealed for u64 {}
    impl Sealed for i64 {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

macro_rules! int_pixel {
    ($t:ty, small) => {
        int_pixel!($t, |v: $t, sum: f32| sum + v as f32, true, wrapping_sq_diff);
    };
    ($t:ty, wide) => {
        int_pixel!(
            $t,
            |v: $t, sum: f32| (sum as f64 + v as f64) as f32,
            false,
            wrapping_sq_diff
        );
    };
    ($t:ty, $add:expr, $fits:expr, $sq:ident) => {
        impl Pixel for $t {
            type Dist = i64;
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn is_null(self, null: Option<Self>) -> bool {
                null == Some(self)
            }
            #[inline]
            fn add_to_f32_sum(self, sum: f32) -> f32 {
                let add = $add;
                add(self, sum)
            }
            #[inline]
            fn exact(self) -> i128 {
                self as i128
            }
            const EXACT_UNIT: f64 = 1.0;
            const EXACT_FITS_I64: bool = $fits;
            const DIST_ZERO: i64 = 0;
            const DIST_UNSET: i64 = -1;
            #[inline]
            fn add_sq_diff(acc: i64, a: Self, b: Self) -> i64 {
                $sq(acc, a as i128, b as i128)
            }
            #[inline]
            fn dist_bits(d: i64) -> i64 {
                d
            }
            fn diagonal_centre(min: Self, max: Self, i: usize, k: usize) -> Self {
                let step = max.wrapping_sub(min) as f64 / (k + 1) as f64;
                (min as f64 + (i + 1) as f64 * step) as $t
            }
        }
    };
}

int_pixel!(u8, small);
int_pixel!(i8, small);
int_pixel!(u16, small);
int_pixel!(i16, small);
int_pixel!(u32, wide);
int_pixel!(i32, wide);

/// pyshepseg's `int64` single-pixel distance, wrapping as numba's does (for up to 32-bit
/// pixels it never wraps).
#[inline]
fn wrapping_sq_diff(acc: i64, a: i128, b: i128) -> i64 {
    let d = (a - b) as i64;
    acc.wrapping_add(d.wrapping_mul(d))
}

/// The distance for 64-bit pixels: saturating at `i64::MAX` instead of wrapping as pyshepseg's
/// `int64` arithmetic does. Differences that large are not spectra, and a saturated distance
/// still orders the same in a tile as in the whole image.
#[inline]
fn saturating_sq_diff(acc: i64, a: i128, b: i128) -> i64 {
    let d = (a - b).unsigned_abs();
    let sq = if d > 3_037_000_499 {
        i64::MAX
    } else {
        (d * d) as i64
    };
    acc.saturating_add(sq)
}

// 64-bit integers: numpy adds them to `float32` sums in `float64`; exact sums in `i128` (2^64 x
// 2^32 pixels fit).
int_pixel!(
    u64,
    |v: u64, sum: f32| (sum as f64 + v as f64) as f32,
    false,
    saturating_sq_diff
);
int_pixel!(
    i64,
    |v: i64, sum: f32| (sum as f64 + v as f64) as f32,
    false,
    saturating_sq_diff
);

/// 2^40: `f32` values are summed exactly in units of 2^-40 (see [`Pixel::exact`]). With
/// `i128` sums that holds any segment of up to 2^32 pixels of magnitude below 2^55 (larger
/// magnitudes are clamped there).
const F32_EXACT_SCALE: f64 = (1u64 << 40) as f64;

impl Pixel for f32 {
    type Dist = f32;
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn is_null(self, null: Option<Self>) -> bool {
        !self.is_finite() || null == Some(self)
    }
    #[inline]
    fn add_to_f32_sum(self, sum: f32) -> f32 {
        sum + self
    }
    #[inline]
    fn exact(self) -> i128 {
        // Scaling by a power of two is exact in f64; `as` truncates toward zero (and
        // saturates). Magnitudes from 2^55 up (far beyond any reflectance or index) count as
        // just under 2^55, so that sums of up to 2^32 pixels never overflow.
        const LIMIT: i128 = (1 << 95) - 1;
        ((self as f64 * F32_EXACT_SCALE) as i128).clamp(-LIMIT, LIMIT)
    }
    const EXACT_UNIT: f64 = 1.0 / F32_EXACT_SCALE;
    const EXACT_FITS_I64: bool = false;
    const DIST_ZERO: f32 = 0.0;
    const DIST_UNSET: f32 = -1.0;
    #[inline]
    fn add_sq_diff(acc: f32, a: Self, b: Self) -> f32 {
        let d = a - b;
        acc + d * d
    }
    #[inline]
    fn dist_bits(d: f32) -> i64 {
        // A sum of squares from +0.0 is +0.0 or positive: its bits order as its value.
        i64::from(d.to_bits())
    }
    fn diagonal_centre(min: Self, max: Self, i: usize, k: usize) -> Self {
        // pyshepseg's float32 arithmetic; where it overflows (a range wider than f32::MAX,
        // on which pyshepseg's centres are infinite), the same in f64.
        let step = (max - min) / (k + 1) as f32;
        let c = min + (i + 1) as f32 * step;
        if c.is_finite() {
            return c;
        }
        let step = (max as f64 - min as f64) / (k + 1) as f64;
        (min as f64 + (i + 1) as f64 * step) as f32
    }
}

/// `f64` magnitudes above this are null: no spectrum is that large (they are fill values such
/// as -1.8e308), and k-means could not square them without overflowing.
pub const F64_NULL_ABOVE: f64 = 1e100;

impl Pixel for f64 {
    type Dist = f64;
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn is_null(self, null: Option<Self>) -> bool {
        self.is_nan() || self.abs() > F64_NULL_ABOVE || null == Some(self)
    }
    #[inline]
    fn add_to_f32_sum(self, sum: f32) -> f32 {
        // numpy: float32 + float64 is float64, stored back into the float32 array.
        (sum as f64 + self) as f32
    }
    #[inline]
    fn exact(self) -> i128 {
        // As for `f32`: units of 2^-40, truncated toward zero (so each value's share of a
        // sum, and hence the sum, does not depend on the order of addition), magnitudes
        // from 2^55 clamped.
        const LIMIT: i128 = (1 << 95) - 1;
        ((self * F32_EXACT_SCALE) as i128).clamp(-LIMIT, LIMIT)
    }
    const EXACT_UNIT: f64 = 1.0 / F32_EXACT_SCALE;
    const EXACT_FITS_I64: bool = false;
    const DIST_ZERO: f64 = 0.0;
    const DIST_UNSET: f64 = -1.0;
    #[inline]
    fn add_sq_diff(acc: f64, a: Self, b: Self) -> f64 {
        let d = a - b;
        acc + d * d
    }
    #[inline]
    fn dist_bits(d: f64) -> i64 {
        // Distances are never negative (or NaN: nulls are excluded), so the bits order as
        // the values do.
        d.to_bits() as i64
    }
    fn diagonal_centre(min: Self, max: Self, i: usize, k: usize) -> Self {
        let step = (max - min) / (k + 1) as f64;
        let c = min + (i + 1) as f64 * step;
        if c.is_finite() {
            c
        } else {
            // A range wider than f64::MAX: in halves, which cannot overflow.
            let step = (max / 2.0 - min / 2.0) / (k + 1) as f64;
            (min / 2.0 + (i + 1) as f64 * step) * 2.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_distance_does_not_wrap() {
        // numba computes the difference in int64, so 0 - 200 in u8 is -200, not 56.
        assert_eq!(u8::add_sq_diff(0, 0, 200), 40_000);
        assert_eq!(u16::add_sq_diff(0, 0, 300), 90_000);
    }

    #[test]
    fn exact_values_sum_the_same_in_any_order() {
        assert_eq!(200u8.exact(), 200);
        assert_eq!((-7i32).exact(), -7);
        assert_eq!(0.5f32.exact() as f64 * f32::EXACT_UNIT, 0.5);
        // 2^-17 and above are exact; f32 sums of these depend on the order.
        let v = [1.0e7f32, 0.1, -1.0e7, 0.3, 2.0f32.powi(-17)];
        let forward: i128 = v.iter().map(|x| x.exact()).sum();
        let backward: i128 = v.iter().rev().map(|x| x.exact()).sum();
        assert_eq!(forward, backward);
        assert_eq!(2.0f32.powi(-17).exact(), 1 << 23);
        assert_ne!(v.iter().sum::<f32>(), v.iter().rev().sum::<f32>());
    }

    #[test]
    fn nan_and_infinities_are_null_for_floats() {
        assert!(f32::NAN.is_null(None));
        assert!(f32::INFINITY.is_null(None));
        assert!(f32::NEG_INFINITY.is_null(Some(-9999.0)));
        assert!(1.0f32.is_null(Some(1.0)));
        assert!(!1.0f32.is_null(Some(2.0)));
        assert!(!7u16.is_null(None));
    }

    #[test]
    fn diagonal_centres_truncate() {
        // (10 - 0) / 3 = 3.33..: centres 3 and 6 after truncation.
        assert_eq!(u8::diagonal_centre(0, 10, 0, 2), 3);
        assert_eq!(u8::diagonal_centre(0, 10, 1, 2), 6);
        assert_eq!(i16::diagonal_centre(-10, 0, 0, 2), -6);
        assert!((f32::diagonal_centre(0.0, 1.0, 0, 3) - 0.25).abs() < 1e-7);
    }

    #[test]
    fn wide_ints_sum_through_f64() {
        let big = 16_777_217i32; // not representable in f32
        assert_eq!(big.add_to_f32_sum(1.0), (16_777_218f64) as f32);
    }
}
