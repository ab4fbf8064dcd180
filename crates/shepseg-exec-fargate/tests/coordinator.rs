//! The coordinator against workers on threads of this process, speaking the real protocol over
//! real TCP: retries, silent workers, the barrier.

use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shepseg_exec_fargate::protocol::{
    decode, random_bytes, read_frame_blocking, write_msg_blocking, CoordMsg, Role, WorkerMsg,
    PROTOCOL_VERSION,
};
use shepseg_exec_fargate::{
    run_worker, RemoteError, RemoteExecutor, RemoteOptions, WorkerInvocation, WorkerLauncher,
    WorkerOptions,
};
use shepseg_tiling::{
    ExecError, SegmentedTile, SequentialExecutor, TileConsumer, TileExecutor, TileFailure,
};
use tokio::runtime::Handle;

#[path = "../../../testdata/rgbn_job.rs"]
mod rgbn_job;
use rgbn_job::rgbn_job;

/// Collects tiles in the order they arrive.
#[derive(Default)]
struct Collect(Vec<SegmentedTile>);

impl TileConsumer for Collect {
    type Error = std::convert::Infallible;
    fn consume(&mut self, t: SegmentedTile) -> Result<(), Self::Error> {
        self.0.push(t);
        Ok(())
    }
}

/// What a launched worker does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Behaviour {
    /// The real worker.
    Real,
    /// Joins, takes a tile, then says nothing more (a hung or partitioned worker).
    Silent,
    /// Joins, takes a tile and its read permit, then leaves as on SIGTERM, handing it back.
    LeavesWithTile,
    /// The real worker with its stop flag already raised (a signal came as it started).
    Stopped,
}

/// Starts workers as threads of this process; the first `silent` of them go silent.
struct ThreadLauncher {
    plan: Vec<Behaviour>,
    launched: usize,
    handles: Vec<std::thread::JoinHandle<()>>,
    outcomes: Arc<Mutex<Vec<String>>>,
    /// The count asked for by each `launch` call.
    launches: Arc<Mutex<Vec<usize>>>,
}

impl ThreadLauncher {
    fn new(plan: Vec<Behaviour>) -> Self {
        Self {
            plan,
            launched: 0,
            handles: Vec::new(),
            outcomes: Arc::default(),
            launches: Arc::default(),
        }
    }
}

impl WorkerLauncher for ThreadLauncher {
    fn launch(
        &mut self,
        _rt: &Handle,
        count: usize,
        inv: &WorkerInvocation,
    ) -> Result<(), RemoteError> {
        self.launches.lock().unwrap().push(count);
        for _ in 0..count {
            let behaviour = self
                .plan
                .get(self.launched)
                .copied()
                .unwrap_or(Behaviour::Real);
            self.launched += 1;
            let inv = inv.clone();
            let outcomes = Arc::clone(&self.outcomes);
            let name = format!("thread-{}", self.launched);
            self.handles.push(std::thread::spawn(move || {
                let r = match behaviour {
                    Behaviour::Real | Behaviour::Stopped => run_worker(&WorkerOptions {
                        connect: inv.connect.clone(),
                        name,
                        secret: inv.secret.clone(),
                        connect_timeout: Duration::from_secs(5),
                        stop: (behaviour == Behaviour::Stopped)
                            .then(|| Arc::new(AtomicBool::new(true))),
                    })
                    .map(|s| match s.left {
                        Some(tile) => format!("left {tile:?}"),
                        None => format!("done {}", s.tiles_done),
                    }),
                    Behaviour::Silent => silent_worker(&inv),
                    Behaviour::LeavesWithTile => leaving_worker(&inv),
                };
                outcomes
                    .lock()
                    .unwrap()
                    .push(r.unwrap_or_else(|e| e.to_string()));
            }));
        }
        Ok(())
    }

    fn poll(&mut self, _rt: &Handle) -> Vec<String> {
        Vec::new()
    }

    fn shutdown(&mut self, _rt: &Handle) -> Result<(), RemoteError> {
        Ok(())
    }
}

/// Authenticates, takes one tile and its read permit, then leaves handing the tile back.
fn leaving_worker(inv: &WorkerInvocation) -> Result<String, RemoteError> {
    let mut s = joined(inv)?;
    write_msg_blocking(&mut s, &WorkerMsg::Ready)?;
    let CoordMsg::Lease { tile, .. } = decode(&read_frame_blocking(&mut s, 1 << 20)?)? else {
        return Err(RemoteError::Protocol("no lease".into()));
    };
    write_msg_blocking(&mut s, &WorkerMsg::ReadRequest { tile })?;
    let granted: CoordMsg = decode(&read_frame_blocking(&mut s, 1 << 20)?)?;
    assert_eq!(granted, CoordMsg::ReadGranted { tile });
    write_msg_blocking(&mut s, &WorkerMsg::Leaving { tile: Some(tile) })?;
    Ok(format!("left with tile {tile}"))
}

/// Authenticates, takes one tile, then stays connected without a word for 30 s.
fn silent_worker(inv: &WorkerInvocation) -> Result<String, RemoteError> {
    let mut s = joined(inv)?;
    write_msg_blocking(&mut s, &WorkerMsg::Ready)?;
    let lease: CoordMsg = decode(&read_frame_blocking(&mut s, 1 << 20)?)?;
    assert!(matches!(lease, CoordMsg::Lease { .. }), "{lease:?}");
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut buf = [0u8; 1];
    use std::io::Read;
    // The coordinator should hang up on us.
    Ok(format!("silent: {:?}", s.read(&mut buf)))
}

/// Connects and authenticates by hand, as a worker; returns the connection after the welcome.
fn joined(inv: &WorkerInvocation) -> Result<TcpStream, RemoteError> {
    let mut s = TcpStream::connect(&inv.connect)?;
    write_msg_blocking(
        &mut s,
        &WorkerMsg::Hello {
            version: PROTOCOL_VERSION,
            name: "silent".into(),
        },
    )?;
    let CoordMsg::Challenge { nonce } = decode(&read_frame_blocking(&mut s, 1 << 20)?)? else {
        return Err(RemoteError::Protocol("no challenge".into()));
    };
    let mine = random_bytes()?;
    write_msg_blocking(
        &mut s,
        &WorkerMsg::Proof {
            mac: inv.secret.mac(Role::Worker, &nonce, &mine),
            nonce: mine,
        },
    )?;
    let _welcome: CoordMsg = decode(&read_frame_blocking(&mut s, 1 << 20)?)?;
    Ok(s)
}

fn options(workers: usize) -> RemoteOptions {
    RemoteOptions {
        workers,
        heartbeat_timeout: Duration::from_secs(1),
        barrier_timeout: Duration::from_secs(20),
        ..Default::default()
    }
}

fn quiet() -> Box<dyn Fn(&str) + Send + Sync> {
    Box::new(|_| {})
}

#[test]
fn a_silent_worker_loses_its_tile_and_the_output_is_unchanged() {
    let job = rgbn_job();
    let mut expected = Collect::default();
    SequentialExecutor.run(&job, &mut expected).unwrap();

    let launcher = ThreadLauncher::new(vec![Behaviour::Silent, Behaviour::Real]);
    let outcomes = Arc::clone(&launcher.outcomes);
    let ex = RemoteExecutor::new(options(2), launcher, quiet());
    let mut got = Collect::default();
    ex.run(&job, &mut got).unwrap();
    assert_eq!(got.0.len(), expected.0.len());
    for (a, b) in got.0.iter().zip(&expected.0) {
        assert_eq!(a.tile, b.tile);
        assert_eq!(a.segimg, b.segimg, "tile {:?}", a.tile);
    }
    let r = ex.report();
    assert_eq!(r.workers_lost, 1, "{r:?}");
    assert!(r.tiles_requeued >= 1, "{r:?}");
    assert!(
        r.log.iter().any(|l| l.contains("no heartbeat")),
        "{:?}",
        r.log
    );
    assert!(r.replacements >= 1, "a replacement was launched: {r:?}");
    drop(ex);
    std::thread::sleep(Duration::from_millis(200));
    let o = outcomes.lock().unwrap();
    assert!(o.iter().any(|s| s.starts_with("done")), "{o:?}");
}

#[test]
fn a_tile_failing_on_every_attempt_fails_the_job_with_the_worker_error() {
    let mut job = rgbn_job();
    // The coordinator has the grid and model; the workers cannot open the input.
    job.input = PathBuf::from("/nonexistent/shepseg/input.tif");
    let ex = RemoteExecutor::new(
        RemoteOptions {
            tile_retries: 3,
            ..options(2)
        },
        ThreadLauncher::new(vec![]),
        quiet(),
    );
    let err = ex.run(&job, &mut Collect::default()).unwrap_err();
    let msg = err.to_string();
    // Whichever tile reaches its third failure first is named.
    // The same variant as a tile failing on a local thread: the tile, and the cause.
    assert!(
        matches!(
            err,
            ExecError::Tile {
                cause: TileFailure::Reported(_),
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.starts_with("tile ("), "{msg}");
    assert!(msg.contains("failed on 3 attempts"), "{msg}");
    assert!(msg.contains("/nonexistent/shepseg/input.tif"), "{msg}");
    assert!(ex.report().tiles_requeued >= 2, "{:?}", ex.report());
}

#[test]
fn no_worker_means_a_barrier_timeout_not_a_hang() {
    struct Nobody;
    impl WorkerLauncher for Nobody {
        fn launch(
            &mut self,
            _: &Handle,
            _: usize,
            _: &WorkerInvocation,
        ) -> Result<(), RemoteError> {
            Ok(())
        }
        fn poll(&mut self, _: &Handle) -> Vec<String> {
            Vec::new()
        }
        fn shutdown(&mut self, _: &Handle) -> Result<(), RemoteError> {
            Ok(())
        }
    }
    let ex = RemoteExecutor::new(
        RemoteOptions {
            barrier_timeout: Duration::from_secs(1),
            ..options(2)
        },
        Nobody,
        quiet(),
    );
    let err = ex.run(&rgbn_job(), &mut Collect::default()).unwrap_err();
    assert!(matches!(err, ExecError::NoWorkers { seconds: 1 }), "{err}");
    assert!(
        err.to_string().contains("no worker connected within 1 s"),
        "{err}"
    );
}

#[test]
fn no_more_workers_are_started_than_tiles() {
    let job = rgbn_job();
    let n = job.grid.tiles().len();
    let mut expected = Collect::default();
    SequentialExecutor.run(&job, &mut expected).unwrap();
    let launcher = ThreadLauncher::new(vec![]);
    let launches = Arc::clone(&launcher.launches);
    let ex = RemoteExecutor::new(options(10 * n), launcher, quiet());
    let mut got = Collect::default();
    ex.run(&job, &mut got).unwrap();
    assert_eq!(launches.lock().unwrap().first(), Some(&n), "{n} tiles");
    assert_eq!(got.0.len(), expected.0.len());
    for (a, b) in got.0.iter().zip(&expected.0) {
        assert_eq!(a.segimg, b.segimg, "tile {:?}", a.tile);
    }
}

#[test]
fn a_worker_leaving_on_a_signal_hands_its_tile_back_without_a_failed_attempt() {
    let job = rgbn_job();
    let mut expected = Collect::default();
    SequentialExecutor.run(&job, &mut expected).unwrap();
    // One attempt per tile: a tile counted as failed would fail the job.
    let launcher = ThreadLauncher::new(vec![Behaviour::LeavesWithTile, Behaviour::Stopped]);
    let outcomes = Arc::clone(&launcher.outcomes);
    let ex = RemoteExecutor::new(
        RemoteOptions {
            tile_retries: 1,
            ..options(2)
        },
        launcher,
        quiet(),
    );
    let mut got = Collect::default();
    ex.run(&job, &mut got).unwrap();
    assert_eq!(got.0.len(), expected.0.len());
    for (a, b) in got.0.iter().zip(&expected.0) {
        assert_eq!(a.segimg, b.segimg, "tile {:?}", a.tile);
    }
    let r = ex.report();
    assert_eq!(r.workers_left, 2, "{r:?}");
    assert_eq!(r.workers_lost, 0, "{r:?}");
    assert!(r.tiles_requeued >= 1, "{r:?}");
    assert!(
        r.log
            .iter()
            .any(|l| l.contains("left on a signal and handed back tile")),
        "{:?}",
        r.log
    );
    // Both were replaced (a Spot task that is going away), and the replacements did the work.
    assert!(r.replacements >= 2, "{r:?}");
    drop(ex);
    std::thread::sleep(Duration::from_millis(200));
    let o = outcomes.lock().unwrap();
    assert!(o.iter().any(|s| s.starts_with("left with tile")), "{o:?}");
    // The stopped real worker leaves at its first look at the flag, with or without a tile.
    assert!(
        o.iter()
            .any(|s| s == "left None" || s.starts_with("left Some(")),
        "{o:?}"
    );
    assert!(o.iter().any(|s| s.starts_with("done")), "{o:?}");
}
