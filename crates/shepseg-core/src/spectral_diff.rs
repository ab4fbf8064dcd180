//! maxSpectralDiff: how different two segments' mean spectra may be and still merge.
//!
//! `auto` takes a percentile (default 50) of the distances between all pairs of cluster
//! centres; `none` is ten times the largest such distance (never limiting). As in pyshepseg, the
//! pairwise distances are stored as `float32` and the percentile is numpy's linear
//! interpolation, so the value, and the merge threshold `maxSpectralDiff^2` (squared in
//! `float32` for these two, in `float64` for a value given explicitly), match it exactly.
//!
//! ```
//! use shepseg_core::{KMeansModel, MaxSpectralDiff};
//! let m = KMeansModel::new(vec![vec![0.0], vec![3.0], vec![7.0]]).unwrap();
//! // Pair distances 3, 4, 7: the median is 4.
//! assert_eq!(MaxSpectralDiff::Auto.resolve(&m, 50.0).value(), 4.0);
//! assert_eq!(MaxSpectralDiff::Unlimited.resolve(&m, 50.0).value(), 70.0);
//! ```

use std::fmt;
use std::str::FromStr;

use crate::error::CoreError;
use crate::kmeans::KMeansModel;
use crate::numeric::{numpy_sum, percentile_f32};

/// The maxSpectralDiff parameter, as given.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum MaxSpectralDiff {
    /// A percentile (`spect_dist_pcntile`) of the distances between cluster centres.
    #[default]
    Auto,
    /// Ten times the largest distance between cluster centres: never limits merging.
    Unlimited,
    /// A value in the units of the image's spectral space.
    Value(f64),
}

impl FromStr for MaxSpectralDiff {
    type Err = CoreError;
    /// Parses `auto`, `none` or a non-negative number.
    fn from_str(s: &str) -> Result<Self, CoreError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "none" => Ok(Self::Unlimited),
            other => match other.parse::<f64>() {
                Ok(v) if v >= 0.0 && v.is_finite() => Ok(Self::Value(v)),
                _ => Err(CoreError::InvalidParameter(format!(
                    "max spectral diff must be 'auto', 'none' or a non-negative number, got '{s}'"
                ))),
            },
        }
    }
}

impl fmt::Display for MaxSpectralDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Auto => write!(f, "auto"),
            Self::Unlimited => write!(f, "none"),
            Self::Value(v) => write!(f, "{v}"),
        }
    }
}

/// A resolved maxSpectralDiff and the squared threshold the merge test compares against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpectralThreshold {
    value: f64,
    squared: f64,
}

impl SpectralThreshold {
    /// The maxSpectralDiff value used.
    pub fn value(&self) -> f64 {
        self.value
    }

    /// `value^2` as pyshepseg computes it: a merge is refused when the squared distance between
    /// mean spectra is greater than this.
    pub fn squared(&self) -> f64 {
        self.squared
    }

    fn from_f32(v: f32) -> Self {
        Self {
            value: v as f64,
            squared: (v * v) as f64,
        }
    }
}

impl MaxSpectralDiff {
    /// Resolves the parameter against a model's centres. With fewer than two centres there is
    /// no distance scale, so `auto` and `none` do not limit merging (infinite threshold).
    pub fn resolve(&self, model: &KMeansModel, pcntile: f64) -> SpectralThreshold {
        if let Self::Value(v) = *self {
            return SpectralThreshold {
                value: v,
                squared: v * v,
            };
        }
        let d = centre_distances(model);
        if d.is_empty() {
            return SpectralThreshold::from_f32(f32::INFINITY);
        }
        match self {
            Self::Auto => SpectralThreshold::from_f32(percentile_f32(&d, pcntile)),
            _ => {
                let max = d.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                SpectralThreshold::from_f32(10.0 * max)
            }
        }
    }
}

/// Distances between every pair of centres (i < j, row-major), as `float32`.
fn centre_distances(model: &KMeansModel) -> Vec<f32> {
    let k = model.num_clusters();
    let mut out = Vec::with_capacity(k * k.saturating_sub(1) / 2);
    let mut sq = vec![0.0; model.num_bands()];
    for i in 0..k {
        for j in (i + 1)..k {
            for ((s, a), b) in sq.iter_mut().zip(model.centre(i)).zip(model.centre(j)) {
                *s = (a - b) * (a - b);
            }
            out.push(numpy_sum(&sq).sqrt() as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        assert_eq!("auto".parse::<MaxSpectralDiff>(), Ok(MaxSpectralDiff::Auto));
        assert_eq!(
            "None".parse::<MaxSpectralDiff>(),
            Ok(MaxSpectralDiff::Unlimited)
        );
        assert_eq!(
            "12.5".parse::<MaxSpectralDiff>(),
            Ok(MaxSpectralDiff::Value(12.5))
        );
        assert!("-1".parse::<MaxSpectralDiff>().is_err());
        assert!("big".parse::<MaxSpectralDiff>().is_err());
    }

    #[test]
    fn single_centre_does_not_limit() {
        let m = KMeansModel::new(vec![vec![1.0, 2.0]]).unwrap();
        assert!(MaxSpectralDiff::Auto
            .resolve(&m, 50.0)
            .squared()
            .is_infinite());
    }

    #[test]
    fn explicit_value_squares_in_f64() {
        let m = KMeansModel::new(vec![vec![1.0], vec![2.0]]).unwrap();
        let t = MaxSpectralDiff::Value(0.1).resolve(&m, 50.0);
        assert_eq!(t.squared(), 0.1 * 0.1);
    }
}
