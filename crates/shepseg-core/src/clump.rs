//! Clumping: label connected runs of equal cluster IDs as separate segments.
//!
//! Each clump of 4- or 8-connected pixels with the same non-null value gets its own ID, from 1
//! in raster order of each clump's first pixel. As in pyshepseg, a clump stops growing once it
//! has gathered [`MAX_CLUMP_SIZE`] pixels beyond its seed (large uniform areas become several
//! segments, which keeps elimination fast); the shape of such a capped clump depends on the
//! exact search order, which is pyshepseg's: a depth-first search on an explicit stack, pixels
//! marked when pushed, neighbours visited column by column (x outer, y inner).
//!
//! ```
//! use ndarray::array;
//! let clusters = array![[1u32, 1, 2], [0, 2, 2]];
//! let (seg, max_id) = shepseg_core::clump(&clusters.view(), true);
//! assert_eq!(seg, array![[1u32, 1, 2], [0, 2, 2]]);
//! assert_eq!(max_id, 2);
//! ```

use ndarray::{Array2, ArrayView2};

/// pyshepseg's cap on clump size (pixels pushed after the seed).
pub const MAX_CLUMP_SIZE: usize = 10_000;

/// Clumps `img` (0 = null, left 0), returning the segment image and the largest ID used.
pub fn clump(img: &ArrayView2<u32>, four_connected: bool) -> (Array2<u32>, u32) {
    let (rows, cols) = img.dim();
    let (out, id) = match img.as_slice() {
        Some(flat) => clump_slice(flat, rows, cols, four_connected),
        None => {
            let flat: Vec<u32> = img.iter().copied().collect();
            clump_slice(&flat, rows, cols, four_connected)
        }
    };
    // The vector has exactly rows * cols elements.
    let seg = Array2::from_shape_vec((rows, cols), out).unwrap_or_default();
    (seg, id)
}

/// [`clump`] on a row-major slice.
///
/// Two passes, so that the work per pixel is a few comparisons rather than a stack push and pop:
/// the first labels connected components with a union-find over provisional labels and counts
/// their pixels; the second numbers them in raster order of their first pixels. A component
/// small enough that the cap cannot split it is exactly the clump pyshepseg's search would grow
/// from its first pixel; a larger one is split by that search itself ([`Clumping::grow`]), seed by
/// seed in raster order, which gives pyshepseg's clumps and IDs in every case.
pub(crate) fn clump_slice(input: &[u32], rows: usize, cols: usize, four: bool) -> (Vec<u32>, u32) {
    clump_capped(&Clumping {
        input,
        rows,
        cols,
        four,
        cap: MAX_CLUMP_SIZE,
    })
}

/// A clumping job: the cluster image (row-major, 0 = null), its shape, the connectivity and the
/// cap on pixels a clump gathers beyond its seed.
struct Clumping<'a> {
    input: &'a [u32],
    rows: usize,
    cols: usize,
    four: bool,
    cap: usize,
}

/// [`clump_slice`] with the cap given (tests use small caps to exercise splitting).
fn clump_capped(c: &Clumping) -> (Vec<u32>, u32) {
    let Clumping {
        input,
        rows,
        cols,
        four,
        cap,
    } = *c;
    let n = rows * cols;
    let mut out = vec![0u32; n];
    if n == 0 {
        return (out, 0);
    }
    // Pass 1: provisional labels (from 1) and a union-find whose roots are each component's
    // smallest label, that is the label of its first pixel.
    let mut label = vec![0u32; n];
    let mut parent: Vec<u32> = vec![0];
    let mut count: Vec<u32> = vec![0];
    for y in 0..rows {
        let row = y * cols;
        for x in 0..cols {
            let p = row + x;
            let v = input[p];
            if v == 0 {
                continue;
            }
            let mut l = 0u32;
            let mut join = |q: usize, l: &mut u32| {
                if input[q] == v {
                    let other = label[q];
                    *l = if *l == 0 || *l == other {
                        other
                    } else {
                        union(&mut parent, *l, other)
                    };
                }
            };
            if x > 0 {
                join(p - 1, &mut l);
            }
            if y > 0 {
                if !four && x > 0 {
                    join(p - cols - 1, &mut l);
                }
                join(p - cols, &mut l);
                if !four && x + 1 < cols {
                    join(p - cols + 1, &mut l);
                }
            }
            if l == 0 {
                l = parent.len() as u32;
                parent.push(l);
                count.push(0);
            }
            label[p] = l;
            count[l as usize] += 1;
        }
    }
    // Flatten: a parent is always smaller than its child, so one ascending sweep suffices.
    // Then gather each component's size at its root.
    for l in 1..parent.len() {
        let up = parent[parent[l] as usize];
        parent[l] = up;
        if up as usize != l {
            count[up as usize] += count[l];
        }
    }
    // Pass 2: IDs in raster order of first pixels.
    let mut id = 0u32;
    let big = (cap as u32).saturating_add(1);
    let mut final_id = vec![0u32; parent.len()];
    let mut stack: Vec<(u32, u32)> = Vec::new();
    for p in 0..n {
        let l = label[p];
        if l == 0 {
            continue;
        }
        let root = parent[l as usize] as usize;
        if count[root] <= big {
            if final_id[root] == 0 {
                id += 1;
                final_id[root] = id;
            }
            out[p] = final_id[root];
        } else if out[p] == 0 {
            id += 1;
            c.grow(&mut out, &mut stack, p, id);
        }
    }
    (out, id)
}

/// Joins the sets of labels `a` and `b`; returns the root of the union (the smaller root).
#[inline(always)]
fn union(parent: &mut [u32], a: u32, b: u32) -> u32 {
    let ra = find(parent, a);
    let rb = find(parent, b);
    if ra < rb {
        parent[rb as usize] = ra;
        ra
    } else {
        parent[ra as usize] = rb;
        rb
    }
}

/// The root of label `a` in the union-find `parent`, halving the path on the way.
#[inline(always)]
pub(crate) fn find(parent: &mut [u32], mut a: u32) -> u32 {
    while parent[a as usize] != a {
        let up = parent[parent[a as usize] as usize];
        parent[a as usize] = up;
        a = up;
    }
    a
}

impl Clumping<'_> {
    /// pyshepseg's clump growth from seed `p`: a depth-first search on an explicit stack, pixels
    /// marked with `id` in `out` when pushed, neighbours visited column by column (x outer, y
    /// inner), stopping once `cap` pixels beyond the seed are marked.
    fn grow(&self, out: &mut [u32], stack: &mut Vec<(u32, u32)>, p: usize, id: u32) {
        let Clumping {
            input,
            rows,
            cols,
            four,
            cap,
        } = *self;
        let val = input[p];
        out[p] = id;
        stack.clear();
        stack.push(((p / cols) as u32, (p % cols) as u32));
        let mut size = 0usize;
        while size < cap {
            let Some((sy, sx)) = stack.pop() else { break };
            let (sy, sx) = (sy as usize, sx as usize);
            let mut visit = |cy: usize, cx: usize| {
                let q = cy * cols + cx;
                if out[q] == 0 && input[q] == val {
                    out[q] = id;
                    size += 1;
                    stack.push((cy as u32, cx as u32));
                }
            };
            // pyshepseg's order: columns outer, rows inner (the centre is already marked).
            let (left, right) = (sx > 0, sx + 1 < cols);
            let (up, down) = (sy > 0, sy + 1 < rows);
            if four {
                if left {
                    visit(sy, sx - 1);
                }
                if up {
                    visit(sy - 1, sx);
                }
                if down {
                    visit(sy + 1, sx);
                }
                if right {
                    visit(sy, sx + 1);
                }
            } else {
                for (ok, cx) in [(left, sx.wrapping_sub(1)), (true, sx), (right, sx + 1)] {
                    if !ok {
                        continue;
                    }
                    if up {
                        visit(sy - 1, cx);
                    }
                    if cx != sx {
                        visit(sy, cx);
                    }
                    if down {
                        visit(sy + 1, cx);
                    }
                }
            }
        }
    }
}

/// pyshepseg's own procedure, one search per clump, kept to test [`clump_capped`] against.
#[cfg(test)]
fn clump_by_search(c: &Clumping) -> (Vec<u32>, u32) {
    let mut out = vec![0u32; c.rows * c.cols];
    let mut stack = Vec::new();
    let mut id = 0u32;
    for p in 0..c.rows * c.cols {
        if c.input[p] != 0 && out[p] == 0 {
            id += 1;
            c.grow(&mut out, &mut stack, p, id);
        }
    }
    (out, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn four_and_eight_way() {
        let c = array![[1u32, 2], [2, 1]];
        let (s4, n4) = clump(&c.view(), true);
        assert_eq!(n4, 4);
        assert_eq!(s4, array![[1u32, 2], [3, 4]]);
        let (s8, n8) = clump(&c.view(), false);
        assert_eq!(n8, 2);
        assert_eq!(s8, array![[1u32, 2], [2, 1]]);
    }

    /// The two-pass labelling equals pyshepseg's search on random images with few values (so
    /// large components form) and small caps (so many are split), both connectivities.
    #[test]
    fn two_pass_equals_search() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for case in 0..300 {
            let rows = 1 + (next() % 40) as usize;
            let cols = 1 + (next() % 40) as usize;
            let values = 1 + next() % 4;
            let input: Vec<u32> = (0..rows * cols)
                .map(|_| (next() % (values + 1)) as u32)
                .collect();
            let cap = [1, 2, 5, 17, 100, MAX_CLUMP_SIZE][case % 6];
            for four in [true, false] {
                let c = Clumping {
                    input: &input,
                    rows,
                    cols,
                    four,
                    cap,
                };
                assert_eq!(
                    clump_capped(&c),
                    clump_by_search(&c),
                    "case {case}: {rows}x{cols}, {values} values, cap {cap}, four {four}"
                );
            }
        }
    }

    #[test]
    fn clump_size_is_capped() {
        let c = Array2::from_elem((200, 200), 5u32);
        let (s, n) = clump(&c.view(), true);
        assert!(n >= 4);
        let first = s.iter().filter(|&&v| v == 1).count();
        assert!(
            (MAX_CLUMP_SIZE + 1..MAX_CLUMP_SIZE + 4).contains(&first),
            "{first}"
        );
    }
}
