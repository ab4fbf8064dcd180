//! A small data-parallel map on scoped threads, so the core needs no thread-pool crate.
//!
//! Work is cut into items whose results do not depend on which thread ran them, and the
//! results come back in item order: callers combine them in that order, so the arithmetic,
//! and hence the output, is the same for any thread count.

use std::sync::{Mutex, PoisonError};

/// `items.map(f)` in item order, the items taken one at a time by up to `threads` threads
/// (this thread alone when `threads <= 1` or there is at most one item). A panic in `f` is
/// raised again here.
pub(crate) fn par_map<T: Send, R: Send>(
    threads: usize,
    items: Vec<T>,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let n = items.len();
    if threads <= 1 || n <= 1 {
        return items.into_iter().map(f).collect();
    }
    let queue = Mutex::new(items.into_iter().enumerate());
    let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.min(n))
            .map(|_| {
                let (queue, f) = (&queue, &f);
                scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        // A panic elsewhere poisons nothing this loop relies on.
                        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
                        match next {
                            Some((i, item)) => done.push((i, f(item))),
                            None => break,
                        }
                    }
                    done
                })
            })
            .collect();
        for h in handles {
            let done = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            for (i, r) in done {
                out[i] = Some(r);
            }
        }
    });
    // Every item was taken by some thread, and every thread joined without panicking.
    out.into_iter().flatten().collect()
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
