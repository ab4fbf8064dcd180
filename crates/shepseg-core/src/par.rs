//! A data-parallel map over a persistent pool of threads (rayon's), so that a fit's thousand
//! or so parallel passes do not each start threads (about 55 us a thread on the 2-core VM
//! measured: 1.7 ms a pass for 32 threads, more than the pass itself).
//!
//! Work is cut into items whose results do not depend on which thread ran them, and the
//! results come back in item order: callers combine them in that order, so the arithmetic,
//! and hence the output, is the same for any thread count.

use rayon::prelude::*;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The pools built so far, by thread count.
type Pools = Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>>;

/// The pool of `threads` threads, built on first use and kept for the process (one per thread
/// count asked for; idle threads sleep). `None` if the threads cannot be started.
fn pool(threads: usize) -> Option<Arc<rayon::ThreadPool>> {
    static POOLS: OnceLock<Pools> = OnceLock::new();
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some((_, p)) = pools.iter().find(|(n, _)| *n == threads) {
        return Some(Arc::clone(p));
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("shepseg-core-{i}"))
        .build()
        .ok()?;
    let p = Arc::new(p);
    pools.push((threads, Arc::clone(&p)));
    Some(p)
}

/// `items.map(f)` in item order, on a pool of `threads` threads (this thread alone when
/// `threads <= 1`, there is at most one item, or no pool can be started). A panic in `f` is
/// raised again here.
pub(crate) fn par_map<T: Send, R: Send>(
    threads: usize,
    items: Vec<T>,
    f: impl Fn(T) -> R + Sync + Send,
) -> Vec<R> {
    if threads <= 1 || items.len() <= 1 {
        return items.into_iter().map(f).collect();
    }
    match pool(threads) {
        Some(p) => p.install(|| items.into_par_iter().map(f).collect()),
        None => items.into_iter().map(f).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_item_order() {
        for threads in [1, 2, 3, 8] {
            let items: Vec<usize> = (0..100).collect();
            let out = par_map(threads, items, |i| i * i);
            assert_eq!(out, (0..100).map(|i| i * i).collect::<Vec<_>>());
        }
        assert!(par_map(4, Vec::<u8>::new(), |v| v).is_empty());
    }

    #[test]
    fn items_may_borrow_disjoint_mutable_chunks() {
        let mut v = vec![0u32; 1000];
        let items: Vec<(usize, &mut [u32])> = v.chunks_mut(64).enumerate().collect();
        let sums = par_map(3, items, |(c, chunk)| {
            chunk.iter_mut().for_each(|x| *x = c as u32);
            chunk.len()
        });
        assert_eq!(sums.iter().sum::<usize>(), 1000);
        assert!(v.iter().enumerate().all(|(i, &x)| x == (i / 64) as u32));
    }
}
