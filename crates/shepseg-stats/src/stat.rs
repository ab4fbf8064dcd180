//! The per-segment statistics and their arithmetic, exactly as pyshepseg's
//! `calcPerSegmentStatsTiled` computes them for integer images.
//!
//! For integer images: min, max, median, mode, percentiles and count are integers; the mean is
//! the exact integer sum divided in f64 and rounded to f32; the standard deviation is the
//! population value, accumulated as pyshepseg's numba code does (each f64 term `count * (v -
//! mean_f32)^2`, in ascending value order, rounded to f32 and added in f32; then `sqrt(sum / N)`
//! in f64, rounded to f32). Percentile P is the first sorted value whose cumulative count reaches
//! `N * (P / 100)` (in f64), so the median of an even count is the lower middle value; the mode's
//! ties go to the smallest value. For float images everything is f64 (mean and deviation by the
//! same definitions, without the f32 steps). A segment with no valid pixels gets the missing
//! value in every column except the count, which is 0.

use std::fmt;
use std::str::FromStr;

use crate::error::StatsError;

/// One per-segment statistic of one band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stat {
    /// Mean.
    Mean,
    /// Population standard deviation.
    Stddev,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// The 50th percentile (lower middle value).
    Median,
    /// Most common value (ties: the smallest).
    Mode,
    /// The P-th percentile, P in 0..=100.
    Percentile(u32),
    /// Number of valid pixels.
    Count,
}

impl FromStr for Stat {
    type Err = StatsError;
    /// Parses `mean`, `stddev`, `min`, `max`, `median`, `mode`, `count` (or `pixcount`) and
    /// `percentile:P` (or pyshepseg's `percentile,P`).
    fn from_str(s: &str) -> Result<Self, StatsError> {
        let t = s.trim().to_ascii_lowercase();
        Ok(match t.as_str() {
            "mean" => Stat::Mean,
            "stddev" => Stat::Stddev,
            "min" => Stat::Min,
            "max" => Stat::Max,
            "median" => Stat::Median,
            "mode" => Stat::Mode,
            "count" | "pixcount" => Stat::Count,
            _ => {
                let p = t
                    .strip_prefix("percentile:")
                    .or_else(|| t.strip_prefix("percentile,"))
                    .ok_or_else(|| {
                        StatsError::BadOption(format!(
                            "statistic {s}: expected mean, stddev, min, max, median, mode, count or percentile:P"
                        ))
                    })?;
                let p: u32 = p.trim().parse().map_err(|_| {
                    StatsError::BadOption(format!("statistic {s}: P must be a whole number 0..100"))
                })?;
                if p > 100 {
                    return Err(StatsError::BadOption(format!(
                        "statistic {s}: P must be in 0..100"
                    )));
                }
                Stat::Percentile(p)
            }
        })
    }
}

impl fmt::Display for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stat::Mean => f.write_str("mean"),
            Stat::Stddev => f.write_str("stddev"),
            Stat::Min => f.write_str("min"),
            Stat::Max => f.write_str("max"),
            Stat::Median => f.write_str("median"),
            Stat::Mode => f.write_str("mode"),
            Stat::Percentile(p) => write!(f, "pcnt{p}"),
            Stat::Count => f.write_str("count"),
        }
    }
}

impl Stat {
    /// pyshepseg_tiling's column name: `Band_{b}_{stat}`, `Band_{b}_pcnt{P}` for percentiles.
    pub fn column_name(&self, band: usize) -> String {
        format!("Band_{band}_{self}")
    }

    /// Whether the column is real: mean and deviation always, everything for float images.
    pub fn is_real(&self, float_image: bool) -> bool {
        float_image || matches!(self, Stat::Mean | Stat::Stddev)
    }
}

/// Distinct values and their counts, ascending.
fn runs<T: Copy + PartialEq>(sorted: &[T]) -> impl Iterator<Item = (T, u64)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let v = *sorted.get(i)?;
        let start = i;
        while i < sorted.len() && sorted[i] == v {
            i += 1;
        }
        Some((v, (i - start) as u64))
    })
}

/// The P-th percentile of sorted values: the first whose cumulative count reaches
/// `N * (P / 100)` (the minimum for P = 0).
fn percentile<T: Copy + PartialEq>(sorted: &[T], p: u32) -> Option<T> {
    let target = sorted.len() as f64 * (f64::from(p) / 100.0);
    let mut cum = 0u64;
    for (v, c) in runs(sorted) {
        cum += c;
        if cum as f64 >= target {
            return Some(v);
        }
    }
    sorted.last().copied()
}

/// The row of a segment without valid pixels: the missing value, and a count of 0.
pub(crate) fn missing_row(stats: &[Stat], missing: f64, out: &mut Vec<f64>) {
    out.extend(
        stats
            .iter()
            .map(|s| if *s == Stat::Count { 0.0 } else { missing }),
    );
}

/// Computes `stats` of the sorted valid values of an integer band into `out`.
pub fn integer_stats(sorted: &[i64], stats: &[Stat], missing: f64, out: &mut Vec<f64>) {
    let n = sorted.len();
    if n == 0 {
        missing_row(stats, missing, out);
        return;
    }
    let mean32 = {
        let sum: i128 = sorted.iter().map(|&v| i128::from(v)).sum();
        (sum as f64 / n as f64) as f32
    };
    for s in stats {
        let v = match s {
            Stat::Mean => f64::from(mean32),
            Stat::Stddev => {
                let m = f64::from(mean32);
                let mut acc = 0.0f32;
                for (v, c) in runs(sorted) {
                    let d = v as f64 - m;
                    acc += (c as f64 * d * d) as f32;
                }
                f64::from((f64::from(acc) / n as f64).sqrt() as f32)
            }
            Stat::Min => sorted[0] as f64,
            Stat::Max => sorted[n - 1] as f64,
            Stat::Median => percentile(sorted, 50).map_or(missing, |v| v as f64),
            Stat::Percentile(p) => percentile(sorted, *p).map_or(missing, |v| v as f64),
            Stat::Mode => mode(sorted).map_or(missing, |v| v as f64),
            Stat::Count => n as f64,
        };
        out.push(v);
    }
}

/// Computes `stats` of the sorted valid values of a float band into `out` (all in f64).
pub fn float_stats(sorted: &[f64], stats: &[Stat], missing: f64, out: &mut Vec<f64>) {
    let n = sorted.len();
    if n == 0 {
        missing_row(stats, missing, out);
        return;
    }
    let mean = sorted.iter().sum::<f64>() / n as f64;
    for s in stats {
        let v = match s {
            Stat::Mean => mean,
            Stat::Stddev => {
                let ss: f64 = sorted.iter().map(|v| (v - mean) * (v - mean)).sum();
                (ss / n as f64).sqrt()
            }
            Stat::Min => sorted[0],
            Stat::Max => sorted[n - 1],
            Stat::Median => percentile(sorted, 50).unwrap_or(missing),
            Stat::Percentile(p) => percentile(sorted, *p).unwrap_or(missing),
            Stat::Mode => mode(sorted).unwrap_or(missing),
            Stat::Count => n as f64,
        };
        out.push(v);
    }
}

/// The most common value; ties to the smallest.
fn mode<T: Copy + PartialEq>(sorted: &[T]) -> Option<T> {
    let mut best: Option<(T, u64)> = None;
    for (v, c) in runs(sorted) {
        if best.is_none_or(|(_, bc)| c > bc) {
            best = Some((v, c));
        }
    }
    best.map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names() {
        assert_eq!(
            "percentile:25".parse::<Stat>().unwrap(),
            Stat::Percentile(25)
        );
        assert_eq!("percentile,7".parse::<Stat>().unwrap(), Stat::Percentile(7));
        assert!("percentile:101".parse::<Stat>().is_err());
        assert!("average".parse::<Stat>().is_err());
        assert_eq!(Stat::Percentile(25).column_name(3), "Band_3_pcnt25");
        assert_eq!(Stat::Mean.column_name(1), "Band_1_mean");
    }

    #[test]
    fn percentiles_follow_pyshepseg() {
        let v: Vec<i64> = (1..=100).collect();
        // 100 * (7 / 100) is 7.000000000000001 in f64: the 8th value.
        assert_eq!(percentile(&v, 7), Some(8));
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&[1i64, 2, 3, 4], 50), Some(2));
        assert_eq!(percentile(&v, 0), Some(1));
        assert_eq!(percentile(&v, 100), Some(100));
    }

    #[test]
    fn integer_stats_and_missing() {
        let mut out = vec![];
        let stats = [
            Stat::Mean,
            Stat::Stddev,
            Stat::Min,
            Stat::Max,
            Stat::Mode,
            Stat::Count,
        ];
        integer_stats(&[1, 2, 2, 3, 3], &stats, -9999.0, &mut out);
        assert_eq!(out[0], f64::from(2.2f32));
        assert!((out[1] - 0.748_331).abs() < 1e-6);
        assert_eq!(&out[2..], &[1.0, 3.0, 2.0, 5.0]);
        out.clear();
        integer_stats(&[], &stats, -9999.0, &mut out);
        assert_eq!(out, vec![-9999.0, -9999.0, -9999.0, -9999.0, -9999.0, 0.0]);
    }
}
