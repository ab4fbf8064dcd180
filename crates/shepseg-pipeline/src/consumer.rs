//! The job's [`TileConsumer`]: finished tiles into the stitcher and the output, with timings
//! and progress.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use shepseg_stitch::{ParallelStitcher, StitchError, TileSink};
use shepseg_tiling::{SegmentedTile, TileConsumer};

use crate::timings::Timings;

/// Called with (tiles done, tiles in all) once before the first tile and after each one.
pub type Progress = Box<dyn FnMut(usize, usize)>;

/// Why a consumer stopped taking tiles.
#[derive(Debug)]
pub(crate) enum ConsumeError {
    /// Stitching or writing failed.
    Stitch(StitchError),
    /// The caller's cancel flag was raised.
    Cancelled,
}

impl From<StitchError> for ConsumeError {
    fn from(e: StitchError) -> Self {
        Self::Stitch(e)
    }
}

/// Whether the caller asked the job to stop.
pub(crate) fn is_cancelled(flag: Option<&Arc<AtomicBool>>) -> bool {
    flag.is_some_and(|f| f.load(Ordering::SeqCst))
}

/// What every consumer records of the tiles it takes: how long it waited for each, their
/// reading and segmenting times, the maxSpectralDiff they used, and progress.
pub(crate) struct TileLog<'a> {
    pub timings: &'a mut Timings,
    progress: Option<&'a mut Progress>,
    total: usize,
    done: usize,
    /// The maxSpectralDiff the tiles used (the same for every tile).
    pub max_spectral_diff_used: f64,
    /// When the previous tile was done with (or the tiles started).
    idle_since: Instant,
    /// Raised by the caller to stop the job at the next tile.
    cancel: Option<Arc<AtomicBool>>,
}

impl<'a> TileLog<'a> {
    /// A log of `total` tiles; reports progress 0 of `total` at once.
    pub fn new(
        timings: &'a mut Timings,
        mut progress: Option<&'a mut Progress>,
        total: usize,
        cancel: Option<Arc<AtomicBool>>,
    ) -> Self {
        if let Some(p) = progress.as_mut() {
            p(0, total);
        }
        Self {
            timings,
            progress,
            total,
            done: 0,
            max_spectral_diff_used: 0.0,
            idle_since: Instant::now(),
            cancel,
        }
    }

    /// Records tile `t`'s arrival; returns when the consumer started on it, or an error if
    /// the job was cancelled.
    pub fn arrived(&mut self, t: &SegmentedTile) -> Result<Instant, ConsumeError> {
        if is_cancelled(self.cancel.as_ref()) {
            return Err(ConsumeError::Cancelled);
        }
        let start = Instant::now();
        self.timings.stitch_wait.record(start - self.idle_since);
        self.timings.reading.record(t.read_time);
        self.timings.segmentation.record(t.segment_time);
        self.max_spectral_diff_used = t.max_spectral_diff;
        Ok(start)
    }

    /// Records that the consumer is done with a tile.
    pub fn done(&mut self) {
        self.idle_since = Instant::now();
        self.done += 1;
        if let Some(p) = self.progress.as_mut() {
            p(self.done, self.total);
        }
    }
}

/// Pushes finished tiles into the stitcher and the sink, recording what each cost.
pub(crate) struct StitchConsumer<'a, S> {
    pub stitcher: ParallelStitcher,
    pub sink: &'a mut S,
    pub log: TileLog<'a>,
}

impl<'a, S: TileSink> StitchConsumer<'a, S> {
    /// A consumer stitching into `sink`; reports progress 0 of `total` at once.
    pub fn new(
        stitcher: ParallelStitcher,
        sink: &'a mut S,
        timings: &'a mut Timings,
        progress: Option<&'a mut Progress>,
        total: usize,
        cancel: Option<Arc<AtomicBool>>,
    ) -> Self {
        Self {
            stitcher,
            sink,
            log: TileLog::new(timings, progress, total, cancel),
        }
    }

    /// Stitches and writes the tiles still in flight (stitching time), then ends the stitch
    /// (finishing time, from the returned instant on).
    pub fn finish(mut self) -> Result<(shepseg_stitch::StitchReport, Instant), StitchError> {
        self.stitcher.flush(self.sink)?;
        for d in self.stitcher.take_serial_times() {
            self.log.timings.stitching.record(d);
        }
        let finishing = Instant::now();
        Ok((self.stitcher.finish(self.sink)?, finishing))
    }
}

impl<S: TileSink> TileConsumer for StitchConsumer<'_, S> {
    type Error = ConsumeError;
    fn consume(&mut self, t: SegmentedTile) -> Result<(), ConsumeError> {
        self.log.arrived(&t)?;
        self.stitcher.push(t.segimg, self.sink)?;
        // The stitcher's own serial time per tile (its per-pixel work runs on its pool).
        for d in self.stitcher.take_serial_times() {
            self.log.timings.stitching.record(d);
        }
        self.log.done();
        Ok(())
    }
}
