//! Where the simplifier reads labels: a traced strip's own buffer, or the segment file through
//! a small cache of blocks (for segments assembled from several strips).

use std::collections::{HashMap, VecDeque};

use gdal::Dataset;

use crate::simplify::Labels;
use crate::trace::Strip;

/// A traced strip's own buffer, for the segments that lie inside it.
impl Labels for Strip<'_> {
    #[inline]
    fn label(&mut self, col: i64, row: i64) -> u32 {
        self.px_or_null(col, row)
    }
}

/// Square blocks of the segment file kept at once.
const BLOCK: i64 = 256;
const BLOCKS_KEPT: usize = 256;

/// Band 1 of a segment file, read in blocks on demand, the oldest dropped first.
pub struct RasterLabels<'a> {
    ds: &'a Dataset,
    cols: i64,
    rows: i64,
    null: Option<u32>,
    blocks: HashMap<(i64, i64), Vec<u32>>,
    order: VecDeque<(i64, i64)>,
    /// The block read last (most reads fall in the same one) and its width.
    last: Option<((i64, i64), Vec<u32>, i64)>,
    /// The first read that failed (its pixels read as 0); the caller must check.
    pub error: Option<String>,
}

impl<'a> RasterLabels<'a> {
    /// Labels of `ds` (`cols` x `rows`), `null` read as 0.
    pub fn new(ds: &'a Dataset, cols: usize, rows: usize, null: Option<u32>) -> Self {
        Self {
            ds,
            cols: cols as i64,
            rows: rows as i64,
            null,
            blocks: HashMap::new(),
            order: VecDeque::new(),
            last: None,
            error: None,
        }
    }

    fn read(&mut self, key: (i64, i64)) -> Vec<u32> {
        let (c0, r0) = (key.0 * BLOCK, key.1 * BLOCK);
        let (w, h) = (
            (self.cols - c0).min(BLOCK) as usize,
            (self.rows - r0).min(BLOCK) as usize,
        );
        let mut buf = vec![0u32; w * h];
        let read = self.ds.rasterband(1).and_then(|b| {
            b.read_into_slice::<u32>((c0 as isize, r0 as isize), (w, h), (w, h), &mut buf, None)
        });
        if let Err(e) = read {
            self.error
                .get_or_insert(format!("reading rows {r0}..{}: {e}", r0 + h as i64));
            buf.fill(0);
        }
        if let Some(null) = self.null {
            buf.iter_mut().filter(|v| **v == null).for_each(|v| *v = 0);
        }
        buf
    }
}

impl Labels for RasterLabels<'_> {
    fn label(&mut self, col: i64, row: i64) -> u32 {
        if col < 0 || row < 0 || col >= self.cols || row >= self.rows {
            return 0;
        }
        let key = (col / BLOCK, row / BLOCK);
        let at = |w: i64| ((row % BLOCK) * w + col % BLOCK) as usize;
        if let Some((k, block, w)) = &self.last {
            if *k == key {
                return block.get(at(*w)).copied().unwrap_or(0);
            }
        }
        // Put the last block back among the others, and take this one out.
        if let Some((k, block, _)) = self.last.take() {
            self.blocks.insert(k, block);
        }
        let block = match self.blocks.remove(&key) {
            Some(b) => b,
            None => {
                if self.order.len() >= BLOCKS_KEPT {
                    if let Some(old) = self.order.pop_front() {
                        self.blocks.remove(&old);
                    }
                }
                self.order.push_back(key);
                self.read(key)
            }
        };
        let w = (self.cols - key.0 * BLOCK).min(BLOCK);
        let v = block.get(at(w)).copied().unwrap_or(0);
        self.last = Some((key, block, w));
        v
    }
}
