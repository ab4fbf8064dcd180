//! The executor contract as code: which tiles may start, and the in-order hand-over of
//! finished ones.
//!
//! Every executor keeps the same promises to its consumer (see [`crate::exec`]): results arrive
//! in the grid's row-major order, and no more than a bounded number of finished results wait
//! for the consumer, so memory grows with the workers and the tile size, never with the image.
//! [`Gate`] says when a tile may start; [`Reorder`] puts finished results back in order and
//! hands them over. Both are generic over what a tile produces, so a job in two phases (per-tile
//! tables first, then per-tile relabelling and writing) runs each phase through the same pieces.

use std::collections::BTreeMap;

use crate::grid::TileGrid;

/// When a tile may start: the *lead* tiles at any time, every other tile once fewer than
/// `ahead` tiles before it are still waiting to be consumed.
///
/// The lead tiles are the grid's last ([`TileGrid::dispatch_order`]: the large corner tile,
/// started first so that no worker ends the job alone on it), so until the end the consumed
/// tiles are all others, and at most `ahead + lead` tiles are ever started and not consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    lead: Vec<usize>,
    ahead: usize,
}

impl Gate {
    /// The window of a job on `grid` with `workers` workers, each allowed one tile in hand,
    /// plus `max_waiting` finished tiles waiting for the consumer.
    pub fn for_grid(grid: &TileGrid, workers: usize, max_waiting: usize) -> Self {
        let (order, lead) = grid.dispatch_order(workers);
        Self {
            lead: order[..lead].to_vec(),
            ahead: workers.max(1) + max_waiting,
        }
    }

    /// The tiles that may start at any time, in the order they should.
    pub fn lead(&self) -> &[usize] {
        &self.lead
    }

    /// Whether tile `index` may start once `consumed` tiles have been consumed.
    pub fn may_start(&self, index: usize, consumed: usize) -> bool {
        self.lead.contains(&index) || index < consumed + self.ahead
    }

    /// The order to start the `n` tiles in: the lead tiles, then the others by index.
    pub fn dispatch_order(&self, n: usize) -> Vec<usize> {
        let rest = (0..n).filter(|i| !self.lead.contains(i));
        self.lead.iter().copied().chain(rest).collect()
    }
}

/// Finished results put back in tile order and handed to the consumer as soon as every tile
/// before them has been.
#[derive(Debug)]
pub struct Reorder<T> {
    waiting: BTreeMap<usize, T>,
    consumed: usize,
    total: usize,
}

impl<T> Reorder<T> {
    /// For a job of `total` tiles.
    pub fn new(total: usize) -> Self {
        Self {
            waiting: BTreeMap::new(),
            consumed: 0,
            total,
        }
    }

    /// Tiles handed over so far; the next one handed over is this index.
    pub fn consumed(&self) -> usize {
        self.consumed
    }

    /// Whether every tile has been handed over.
    pub fn is_done(&self) -> bool {
        self.consumed >= self.total
    }

    /// Takes tile `index`'s result and hands over, in order, every result now ready. Returns
    /// how many were handed over; stops at the consumer's first error.
    pub fn finished<E>(
        &mut self,
        index: usize,
        result: T,
        mut consume: impl FnMut(T) -> Result<(), E>,
    ) -> Result<usize, E> {
        if index >= self.consumed {
            self.waiting.insert(index, result);
        }
        let before = self.consumed;
        while let Some(r) = self.waiting.remove(&self.consumed) {
            consume(r)?;
            self.consumed += 1;
        }
        Ok(self.consumed - before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Workers finishing tiles in a scrambled order, the consumer taking them in grid order:
    /// the window never lets more than `ahead + lead` tiles be held, never stalls, and starts
    /// the lead tile first; the reorder buffer hands every tile over once, in order.
    #[test]
    fn the_window_bounds_held_tiles_and_never_stalls() {
        let grid = TileGrid::new(1000, 700, 128, 32).unwrap();
        let n = grid.tiles().len();
        for (workers, max_waiting) in [(1, 0), (2, 2), (3, 1), (8, 2)] {
            let window = Gate::for_grid(&grid, workers, max_waiting);
            let order = window.dispatch_order(n);
            let mut reorder = Reorder::new(n);
            let mut handed = Vec::new();
            let mut next = 0;
            let mut running: Vec<usize> = Vec::new();
            let mut step = 0u64;
            while !reorder.is_done() {
                while running.len() < workers
                    && next < n
                    && window.may_start(order[next], reorder.consumed())
                {
                    running.push(order[next]);
                    next += 1;
                }
                assert!(!running.is_empty(), "stalled at {}", reorder.consumed());
                // A pseudo-random running tile finishes.
                step = step
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let t = running.swap_remove((step >> 33) as usize % running.len());
                reorder
                    .finished(t, t, |r| {
                        handed.push(r);
                        Ok::<_, ()>(())
                    })
                    .unwrap();
                let held = order[..next]
                    .iter()
                    .filter(|&&t| t >= reorder.consumed())
                    .count();
                assert!(
                    held <= workers + max_waiting + window.lead().len(),
                    "{held} tiles held"
                );
            }
            assert_eq!(order[0], if workers > 1 { n - 1 } else { 0 });
            assert_eq!(handed, (0..n).collect::<Vec<_>>());
        }
    }

    /// A consumer's error stops the hand-over at that tile.
    #[test]
    fn a_consumer_error_stops_the_hand_over() {
        let mut reorder = Reorder::new(4);
        assert_eq!(reorder.finished(1, 1, |_| Ok::<_, u32>(())), Ok(0));
        assert_eq!(
            reorder.finished(0, 0, |r| if r == 1 { Err(7) } else { Ok(()) }),
            Err(7)
        );
        assert_eq!(reorder.consumed(), 1);
    }
}
