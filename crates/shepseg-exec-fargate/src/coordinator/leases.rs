//! What the coordinator's connection tasks share: the lease bookkeeping (which tile each
//! connection holds, which wait, failed attempts) and the events they send the calling thread.
//! Which tile may be leased is the executors' shared contract ([`Gate`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shepseg_tiling::{Gate, SegmentedTile, Tile};
use tokio::sync::{Notify, Semaphore};

use crate::protocol::{JobSpec, Secret};

/// Events from the connection tasks to the calling thread.
pub(super) enum Event {
    Joined(String),
    Lost {
        name: String,
        reason: String,
    },
    /// A worker left on a signal; `tile` is the tile it handed back.
    Left {
        name: String,
        tile: Option<usize>,
    },
    Refused(String),
    Requeued,
    Tile(usize, Box<SegmentedTile>),
    Fatal {
        index: usize,
        message: String,
    },
}

/// Lease bookkeeping shared by the connection tasks.
pub(super) struct State {
    /// Tiles waiting for a worker.
    pub(super) pending: BTreeSet<usize>,
    /// Tile -> connection holding it.
    pub(super) leases: HashMap<usize, u64>,
    /// Failed attempts per tile, with the last error.
    pub(super) attempts: HashMap<usize, (usize, String)>,
    /// Tiles consumed by the stitcher (the gate's reference point).
    pub(super) consumed: usize,
    /// The job is over.
    pub(super) stop: bool,
}

/// What every connection task shares.
pub(super) struct Shared {
    pub(super) state: Mutex<State>,
    pub(super) work: Notify,
    pub(super) reads: Arc<Semaphore>,
    pub(super) secret: Secret,
    pub(super) job: JobSpec,
    pub(super) tiles: Vec<Tile>,
    /// When the job writes a mosaic's tiles: each tile's map, sent with its lease.
    pub(super) maps: Option<Arc<Vec<Vec<u32>>>>,
    /// Which tiles may be leased.
    pub(super) gate: Gate,
    pub(super) retries: usize,
    pub(super) heartbeat: Duration,
    pub(super) max_frame: usize,
    pub(super) events: mpsc::Sender<Event>,
    /// Authenticated connections still open.
    pub(super) connections: std::sync::atomic::AtomicUsize,
    /// Bytes the coordinator received from workers and sent to them, frames whole.
    pub(super) bytes_in: std::sync::atomic::AtomicU64,
    pub(super) bytes_out: std::sync::atomic::AtomicU64,
}

impl Shared {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a failed attempt on a tile; re-queues it or fails the job.
    pub(super) fn fail_attempt(&self, st: &mut State, index: usize, message: String) {
        st.leases.remove(&index);
        let entry = st.attempts.entry(index).or_insert((0, String::new()));
        entry.0 += 1;
        entry.1 = message.clone();
        if entry.0 >= self.retries {
            let attempts = entry.0;
            let _ = self.events.send(Event::Fatal {
                index,
                message: format!("failed on {attempts} attempts; last error: {message}"),
            });
        } else {
            st.pending.insert(index);
            let _ = self.events.send(Event::Requeued);
        }
        self.work.notify_waiters();
    }

    /// Puts a tile a leaving worker held back in the queue, without counting an attempt.
    pub(super) fn hand_back(&self, st: &mut State, index: usize) {
        st.leases.remove(&index);
        st.pending.insert(index);
        let _ = self.events.send(Event::Requeued);
        self.work.notify_waiters();
    }

    /// Gives a waiting lead tile, else the lowest waiting tile the gate lets start, to
    /// connection `conn`.
    pub(super) fn try_lease(&self, conn: u64) -> Lease {
        let mut st = self.lock();
        if st.stop {
            return Lease::Over;
        }
        if let Some(&i) = self.gate.lead().iter().find(|i| st.pending.contains(i)) {
            st.pending.remove(&i);
            st.leases.insert(i, conn);
            return Lease::Tile(i);
        }
        match st.pending.first().copied() {
            Some(i) if self.gate.may_start(i, st.consumed) => {
                st.pending.remove(&i);
                st.leases.insert(i, conn);
                Lease::Tile(i)
            }
            _ if st.pending.is_empty()
                && st.leases.is_empty()
                && st.consumed >= self.tiles.len() =>
            {
                Lease::Over
            }
            _ => Lease::Wait,
        }
    }
}

/// What a connection asking for work gets.
pub(super) enum Lease {
    Tile(usize),
    Wait,
    Over,
}
