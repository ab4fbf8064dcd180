//! Timing report: total per phase and, per tile, min / median / p95 / max (hdrhistogram).

use std::time::Duration;

use hdrhistogram::Histogram;

/// One phase's time: its total and the distribution over tiles.
#[derive(Debug)]
pub struct PhaseTimer {
    total: Duration,
    /// Per-tile durations in microseconds.
    hist: Histogram<u64>,
}

impl Default for PhaseTimer {
    fn default() -> Self {
        Self {
            total: Duration::ZERO,
            // Three significant figures over any duration; creation with these bounds cannot fail.
            hist: Histogram::new(3)
                .unwrap_or_else(|_| Histogram::new_with_max(u64::MAX / 2, 3).expect("valid")),
        }
    }
}

impl PhaseTimer {
    /// Adds one tile's duration.
    pub fn record(&mut self, d: Duration) {
        self.total += d;
        let _ = self.hist.record(d.as_micros().min(u64::MAX as u128) as u64);
    }

    /// Total time.
    pub fn total(&self) -> Duration {
        self.total
    }

    /// (tiles, min, median, p95, max) in seconds.
    pub fn per_tile(&self) -> (u64, f64, f64, f64, f64) {
        let s = |us: u64| us as f64 / 1e6;
        if self.hist.is_empty() {
            return (0, 0.0, 0.0, 0.0, 0.0);
        }
        (
            self.hist.len(),
            s(self.hist.min()),
            s(self.hist.value_at_quantile(0.5)),
            s(self.hist.value_at_quantile(0.95)),
            s(self.hist.max()),
        )
    }

    /// The summary as JSON.
    pub fn json(&self) -> serde_json::Value {
        let (n, min, med, p95, max) = self.per_tile();
        serde_json::json!({
            "total": self.total.as_secs_f64(),
            "tiles": n, "min": min, "median": med, "p95": p95, "max": max,
        })
    }
}

/// All phases of a job.
#[derive(Debug, Default)]
pub struct Timings {
    /// Sampling and fitting the k-means model (once).
    pub spectral_clusters: Duration,
    /// The part of `spectral_clusters` spent reading the sample.
    pub sample_read: Duration,
    /// Reading tiles (summed over workers).
    pub reading: PhaseTimer,
    /// Segmenting tiles (summed over workers).
    pub segmentation: PhaseTimer,
    /// Stitching and writing tiles (the consumer thread).
    pub stitching: PhaseTimer,
    /// Time the stitcher waited for the next tile.
    pub stitch_wait: PhaseTimer,
    /// The seamless join of the tiles' tables (default mode; the consumer thread).
    pub join: Duration,
    /// Finishing the output (attribute table, statistics, rename).
    pub finishing: Duration,
    /// Per-segment statistics after segmenting (`--stats-bands`), if asked for.
    pub statistics: Duration,
}

impl Timings {
    /// The report printed at the end of a job.
    pub fn report(&self, wall: Duration) -> String {
        let mut out = format!(
            "{:<18} {:>9} {:>6} {:>8} {:>8} {:>8} {:>8}\n",
            "phase", "total s", "tiles", "min", "median", "p95", "max"
        );
        out += &format!(
            "{:<18} {:>9.3}\n",
            "spectral clusters",
            self.spectral_clusters.as_secs_f64()
        );
        if !self.sample_read.is_zero() {
            out += &format!(
                "{:<18} {:>9.3}\n",
                "  sample read",
                self.sample_read.as_secs_f64()
            );
        }
        // The seamless mode (a join took place) keeps and writes tiles where the other one
        // stitches them.
        let (keep, waited) = if self.join.is_zero() {
            ("stitching", "stitcher waited")
        } else {
            ("keeping, writing", "waited for tiles")
        };
        for (name, p) in [
            ("reading", &self.reading),
            ("segmentation", &self.segmentation),
            (keep, &self.stitching),
            (waited, &self.stitch_wait),
        ] {
            let (n, min, med, p95, max) = p.per_tile();
            out += &format!(
                "{name:<18} {:>9.3} {n:>6} {min:>8.3} {med:>8.3} {p95:>8.3} {max:>8.3}\n",
                p.total().as_secs_f64()
            );
        }
        if !self.join.is_zero() {
            out += &format!("{:<18} {:>9.3}\n", "join", self.join.as_secs_f64());
        }
        out += &format!(
            "{:<18} {:>9.3}\n",
            "finishing output",
            self.finishing.as_secs_f64()
        );
        if !self.statistics.is_zero() {
            out += &format!(
                "{:<18} {:>9.3}\n",
                "statistics",
                self.statistics.as_secs_f64()
            );
        }
        out += &format!("{:<18} {:>9.3}", "total (wall)", wall.as_secs_f64());
        out
    }

    /// The report as JSON.
    pub fn json(&self, wall: Duration) -> serde_json::Value {
        serde_json::json!({
            "spectral_clusters": self.spectral_clusters.as_secs_f64(),
            "sample_read": self.sample_read.as_secs_f64(),
            "reading": self.reading.json(),
            "segmentation": self.segmentation.json(),
            "stitching": self.stitching.json(),
            "stitch_wait": self.stitch_wait.json(),
            "join": self.join.as_secs_f64(),
            "finishing": self.finishing.as_secs_f64(),
            "statistics": self.statistics.as_secs_f64(),
            "total": wall.as_secs_f64(),
        })
    }
}
