//! A data-parallel map on a rayon pool that the caller sets up once for a whole job (a fit
//! makes about a thousand parallel passes; starting threads for each would cost about 55 us a
//! thread on the 2-core VM measured, 1.7 ms a pass for 32 threads, more than the pass itself).
//!
//! Work is cut into items whose results do not depend on which thread ran them, and the
//! results come back in item order: callers combine them in that order, so the arithmetic,
//! and hence the output, is the same for any thread count.

use rayon::prelude::*;
use std::cell::Cell;

thread_local! {
    /// Set on the thread running a [`with_threads`] job: its [`par_map`]s go parallel.
    static PARALLEL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `job` with its [`par_map`]s spread over a pool of `threads` threads, built for the
/// job and ended after it; on this thread alone when `threads <= 1` or no pool can be started.
/// A panic in the job is raised again here.
pub(crate) fn with_threads<R: Send>(threads: usize, job: impl FnOnce() -> R + Send) -> R {
    if threads > 1 {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("shepseg-core-{i}"))
            .build();
        if let Ok(pool) = pool {
            return pool.install(|| {
                PARALLEL.with(|p| p.set(true));
                let r = job();
                PARALLEL.with(|p| p.set(false));
                r
            });
        }
    }
    job()
}

/// `items.map(f)` in item order: on the pool of the enclosing [`with_threads`], else on this
/// thread. A panic in `f` is raised again here.
pub(crate) fn par_map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
    if items.len() > 1 && PARALLEL.with(Cell::get) {
        items.into_par_iter().map(f).collect()
    } else {
        items.into_iter().map(f).collect()
    }
}

/// Sorts `v` by `key` on the pool of the enclosing [`with_threads`], else on this thread.
/// Unstable: callers' keys are distinct, so the order is the same either way.
pub(crate) fn par_sort_by_key<T: Send, K: Ord>(v: &mut [T], key: impl Fn(&T) -> K + Sync) {
    if PARALLEL.with(Cell::get) {
        v.par_sort_unstable_by_key(key);
    } else {
        v.sort_unstable_by_key(key);
    }
}

/// Calls `f(first, chunk)` for each `size`-long chunk of `v` (`first`: the chunk's first
/// index), on the pool of the enclosing [`with_threads`], else on this thread.
pub(crate) fn par_chunks_mut<T: Send>(
    v: &mut [T],
    size: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    let size = size.max(1);
    if PARALLEL.with(Cell::get) {
        v.par_chunks_mut(size)
            .enumerate()
            .for_each(|(k, c)| f(k * size, c));
    } else {
        v.chunks_mut(size)
            .enumerate()
            .for_each(|(k, c)| f(k * size, c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_item_order() {
        for threads in [1, 2, 3, 8] {
            let items: Vec<usize> = (0..100).collect();
            let out = with_threads(threads, || par_map(items, |i| i * i));
            assert_eq!(out, (0..100).map(|i| i * i).collect::<Vec<_>>());
        }
        assert!(with_threads(4, || par_map(Vec::<u8>::new(), |v| v)).is_empty());
    }

    #[test]
    fn sort_and_chunks_give_the_serial_results() {
        for threads in [1, 2, 4] {
            let (sorted, squares) = with_threads(threads, || {
                let mut v: Vec<u64> = (0..10_000).map(|i| (i * 7919) % 10_007).collect();
                par_sort_by_key(&mut v, |&x| std::cmp::Reverse(x));
                let mut sq = vec![0usize; 1000];
                par_chunks_mut(&mut sq, 64, |first, c| {
                    for (k, x) in c.iter_mut().enumerate() {
                        *x = (first + k) * (first + k);
                    }
                });
                (v, sq)
            });
            assert!(sorted.windows(2).all(|w| w[0] >= w[1]));
            assert!(squares.iter().enumerate().all(|(i, &x)| x == i * i));
        }
    }

    #[test]
    fn items_run_on_the_pool_asked_for() {
        let pools = with_threads(3, || {
            par_map((0..64).collect(), |_: usize| rayon::current_num_threads())
        });
        assert!(pools.iter().all(|&n| n == 3), "{pools:?}");
        // Outside any job the map stays on this thread.
        let here = std::thread::current().id();
        let ran = par_map((0..8).collect(), |_: usize| std::thread::current().id());
        assert!(ran.iter().all(|&id| id == here));
    }

    #[test]
    fn items_may_borrow_disjoint_mutable_chunks() {
        let mut v = vec![0u32; 1000];
        let items: Vec<(usize, &mut [u32])> = v.chunks_mut(64).enumerate().collect();
        let sums = with_threads(3, || {
            par_map(items, |(c, chunk)| {
                chunk.iter_mut().for_each(|x| *x = c as u32);
                chunk.len()
            })
        });
        assert_eq!(sums.iter().sum::<usize>(), 1000);
        assert!(v.iter().enumerate().all(|(i, &x)| x == (i / 64) as u32));
    }
}
