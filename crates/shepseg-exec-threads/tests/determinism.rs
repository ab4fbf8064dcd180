//! The threads executor gives exactly the sequential executor's output, for any worker count, and
//! stops cleanly with the failing tile named.

use std::time::Duration;

use ndarray::Array2;
use shepseg_exec_threads::ThreadsExecutor;
use shepseg_stitch::{MemorySink, StitchError, StitchReport, Stitcher};
use shepseg_tiling::{
    ExecError, FnConsumer, SegmentedTile, SequentialExecutor, TileConsumer, TileExecutor,
    TileFailure, TileJob, TilingError,
};

#[path = "../../../testdata/rgbn_job.rs"]
mod rgbn_job;
use rgbn_job::rgbn_job;

/// Stitches into memory; fails on purpose at tile `fail_at` if set.
struct Stitch {
    stitcher: Stitcher,
    sink: MemorySink,
    seen: usize,
    fail_at: Option<usize>,
}

impl Stitch {
    /// A consumer stitching the rgbn job's 515 x 403 output, failing at tile `fail_at`.
    fn rgbn(job: &TileJob, fail_at: Option<usize>) -> Self {
        Stitch {
            stitcher: Stitcher::new(job.grid.clone(), false),
            sink: MemorySink::new(403, 515),
            seen: 0,
            fail_at,
        }
    }
}

impl TileConsumer for Stitch {
    type Error = StitchError;
    fn consume(&mut self, t: SegmentedTile) -> Result<(), StitchError> {
        if self.fail_at == Some(self.seen) {
            return Err(StitchError::Output("disk full (test)".into()));
        }
        self.seen += 1;
        self.stitcher.push(t.segimg.view(), &mut self.sink)
    }
}

fn run(job: &TileJob, exec: &impl TileExecutor) -> (Array2<u32>, StitchReport) {
    let (cols, rows) = {
        let last = job.grid.tiles().last().unwrap().window;
        (last.xoff + last.xsize, last.yoff + last.ysize)
    };
    let mut c = Stitch {
        stitcher: Stitcher::new(job.grid.clone(), false),
        sink: MemorySink::new(rows, cols),
        seen: 0,
        fail_at: None,
    };
    exec.run(job, &mut c).unwrap();
    let report = c.stitcher.finish().unwrap();
    (c.sink.0, report)
}

#[test]
fn any_worker_count_gives_the_sequential_output() {
    let job = rgbn_job();
    let (expected, expected_report) = run(&job, &SequentialExecutor);
    assert!(expected_report.num_segments > 100);
    for workers in [1, 2, 3, 4, 8] {
        let exec = ThreadsExecutor {
            workers,
            max_concurrent_reads: 2,
            max_waiting: 1,
            tile_timeout: Some(Duration::from_secs(600)),
        };
        let (out, report) = run(&job, &exec);
        assert_eq!(out, expected, "{workers} workers: pixels");
        assert_eq!(report, expected_report, "{workers} workers: report");
    }
}

#[test]
fn a_failing_tile_is_named_and_stops_the_job() {
    let mut job = rgbn_job();
    job.bands = vec![1, 2, 3, 9];
    let mut c = Stitch::rgbn(&job, None);
    let e = ThreadsExecutor {
        workers: 2,
        ..Default::default()
    }
    .run(&job, &mut c)
    .unwrap_err();
    let msg = e.to_string();
    // The tile and the cause, in the variant a remote worker's failure also takes.
    assert!(
        matches!(
            e,
            ExecError::Tile {
                cause: TileFailure::Error(TilingError::Read { band: 9, .. }),
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.starts_with("tile ("), "{msg}");
    assert!(msg.contains("band 9"), "{msg}");
    assert_eq!(c.seen, 0);
}

#[test]
fn a_consumer_error_stops_the_job() {
    let job = rgbn_job();
    let mut c = Stitch::rgbn(&job, Some(3));
    let e = ThreadsExecutor {
        workers: 2,
        ..Default::default()
    }
    .run(&job, &mut c)
    .unwrap_err();
    assert!(matches!(e, ExecError::Consumer(_)), "{e}");
    assert_eq!(c.seen, 3);
}

#[test]
fn a_slow_tile_times_out() {
    let job = rgbn_job();
    let mut c = Stitch::rgbn(&job, None);
    let e = ThreadsExecutor {
        workers: 1,
        tile_timeout: Some(Duration::from_nanos(1)),
        ..Default::default()
    }
    .run(&job, &mut c)
    .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, ExecError::Timeout { .. }), "{msg}");
    assert!(msg.contains("not done within"), "{msg}");
}

#[test]
fn closures_and_borrowed_consumers_take_tiles_in_row_major_order() {
    let job = rgbn_job();
    let n = job.grid.tiles().len();
    let mut seen = Vec::new();
    let mut consumer = FnConsumer(|t: SegmentedTile| {
        seen.push((t.tile.row, t.tile.col));
        Ok::<(), std::convert::Infallible>(())
    });
    let threads = ThreadsExecutor {
        workers: 3,
        ..Default::default()
    };
    // A consumer lent as `&mut`, then used again.
    threads.run(&job, &mut &mut consumer).unwrap();
    let expected: Vec<(usize, usize)> = job.grid.tiles().iter().map(|t| (t.row, t.col)).collect();
    assert_eq!(seen, expected);
    assert_eq!(seen.len(), n);
    // Through a reference to the executor, as the pipeline takes one.
    let by_ref: &ThreadsExecutor = &threads;
    assert_eq!(count_tiles(by_ref, &job), n);
}

/// Tiles an executor delivers, counted by a closure.
fn count_tiles(exec: impl TileExecutor, job: &TileJob) -> usize {
    let mut count = 0;
    exec.run(
        job,
        &mut FnConsumer(|_t: SegmentedTile| {
            count += 1;
            Ok::<(), std::convert::Infallible>(())
        }),
    )
    .unwrap();
    count
}
