//! Clumping: label connected runs of equal cluster IDs as separate segments.
//!
//! Each clump of 4- or 8-connected pixels with the same non-null value gets its own ID, from 1
//! in raster order of each clump's first pixel. As in pyshepseg (and in its compatibility mode
//! only; the default mode's clumps are whole connected components, so a lake is one segment
//! however it is tiled), a clump stops growing once it has gathered [`MAX_CLUMP_SIZE`] pixels
//! beyond its seed (large uniform areas become several segments); the shape of such a capped
//! clump depends on the exact search order, which is pyshepseg's: a depth-first search on an
//! explicit stack, pixels marked when pushed, neighbours visited column by column (x outer,
//! y inner).
//!
//! ```
//! use ndarray::array;
//! let clusters = array![[1u32, 1, 2], [0, 2, 2]];
//! let (seg, max_id) = shepseg_core::clump(&clusters.view(), true);
//! assert_eq!(seg, array![[1u32, 1, 2], [0, 2, 2]]);
//! assert_eq!(max_id, 2);
//! ```

use ndarray::{Array2, ArrayView2};

use crate::mem::zeroed;

/// pyshepseg's cap on clump size (pixels pushed after the seed).
pub const MAX_CLUMP_SIZE: usize = 10_000;

/// Clumps `img` (0 = null, left 0), returning the segment image and the largest ID used.
pub fn clump(img: &ArrayView2<u32>, four_connected: bool) -> (Array2<u32>, u32) {
    let (rows, cols) = img.dim();
    let flat: Vec<u32> = img.iter().copied().collect();
    let (out, id) = clump_vec(flat, rows, cols, four_connected);
    // The vector has exactly rows * cols elements.
    let seg = Array2::from_shape_vec((rows, cols), out).unwrap_or_default();
    (seg, id)
}

/// [`clump`] on a row-major cluster image taken by value, whose buffer becomes the segment
/// image (so clumping allocates no image-sized buffer of its own).
///
/// Two passes, so that the work per pixel is a few comparisons rather than a stack push and pop:
/// the first replaces each pixel's cluster by a provisional label of its connected component
/// (a union-find over labels, which also counts their pixels); the second numbers the
/// components in raster order of their first pixels. A component small enough that the cap
/// cannot split it is exactly the clump pyshepseg's search would grow from its first pixel; a
/// larger one is split by that search itself ([`Search::grow`]), seed by seed in raster order, which
/// gives pyshepseg's clumps and IDs in every case.
pub(crate) fn clump_vec(buf: Vec<u32>, rows: usize, cols: usize, four: bool) -> (Vec<u32>, u32) {
    let (seg, size) = clump_sized(buf, rows, cols, four, true);
    (seg, size.len() as u32 - 1)
}

/// [`clump_vec`], returning each clump's pixel count instead of the largest ID (index 0 is
/// the null pixels' count; the largest ID is `len - 1`): the counts come from the labelling,
/// so the eliminations that follow need no pass over the image to find them. With `capped`
/// false the clumps are the whole connected components (the default mode's).
pub(crate) fn clump_sized(
    buf: Vec<u32>,
    rows: usize,
    cols: usize,
    four: bool,
    capped: bool,
) -> (Vec<u32>, Vec<u32>) {
    let cap = if capped { MAX_CLUMP_SIZE } else { usize::MAX };
    clump_capped(buf, rows, cols, four, cap)
}

/// Provisional labels of pass 1: a union-find whose roots are each component's smallest label
/// (the label of its first pixel), and the pixels given each label.
struct Labels {
    parent: Vec<u32>,
    count: Vec<u32>,
    /// The next label to hand out (labels start at 1; 0 is null).
    next: u32,
}

impl Labels {
    /// Room for `n` labels, the most `n` pixels can need. The buffers are zeroed by the
    /// allocator, so only the pages of labels actually used are ever touched.
    fn new(n: usize) -> Self {
        Self {
            parent: zeroed(n + 1),
            count: zeroed(n + 1),
            next: 1,
        }
    }

    /// Label `l` if `l` is not 0, else a fresh label.
    #[inline(always)]
    fn or_fresh(&mut self, l: u32) -> u32 {
        if l != 0 {
            return l;
        }
        let fresh = self.next;
        self.parent[fresh as usize] = fresh;
        self.next += 1;
        fresh
    }

    /// Pass 1 on one row, 4-connected: `row` holds the row's clusters and gets its labels; `up`
    /// holds the labels of the row above, `up_vals` its clusters (replaced by this row's).
    #[inline(always)]
    fn row4(&mut self, row: &mut [u32], up: &[u32], up_vals: &mut [u32]) {
        let (mut left_v, mut left_l) = (0u32, 0u32);
        for ((px, &lu), uv) in row.iter_mut().zip(up).zip(up_vals.iter_mut()) {
            let v = *px;
            let up_v = std::mem::replace(uv, v);
            if v == 0 {
                left_v = 0;
                continue;
            }
            let (el, eu) = (left_v == v, up_v == v);
            let l = if el && eu && left_l != lu {
                union(&mut self.parent, left_l, lu)
            } else {
                // Written so that the choice compiles to conditional moves: which neighbour
                // matches is close to random on noisy imagery.
                let fresh = self.next;
                self.parent[fresh as usize] = fresh;
                self.next += u32::from(!el && !eu);
                let l = if eu { lu } else { fresh };
                if el {
                    left_l
                } else {
                    l
                }
            };
            self.count[l as usize] += 1;
            *px = l;
            left_v = v;
            left_l = l;
        }
    }

    /// [`Labels::row4`], 8-connected (the neighbours above-left and above-right as well).
    #[inline(always)]
    fn row8(&mut self, row: &mut [u32], up: &[u32], up_vals: &mut [u32]) {
        let cols = row.len();
        let (mut left_v, mut left_l, mut ul_v) = (0u32, 0u32, 0u32);
        for x in 0..cols {
            let v = row[x];
            let up_v = std::mem::replace(&mut up_vals[x], v);
            let ur_v = up_vals.get(x + 1).copied().unwrap_or(0);
            if v != 0 {
                let mut l = 0u32;
                let mut join = |nv: u32, nl: u32, l: &mut u32| {
                    if nv == v {
                        *l = if *l == 0 || *l == nl {
                            nl
                        } else {
                            union(&mut self.parent, *l, nl)
                        };
                    }
                };
                join(left_v, left_l, &mut l);
                if x > 0 {
                    join(ul_v, up[x - 1], &mut l);
                }
                join(up_v, up[x], &mut l);
                if x + 1 < cols {
                    join(ur_v, up[x + 1], &mut l);
                }
                let l = self.or_fresh(l);
                self.count[l as usize] += 1;
                row[x] = l;
                left_l = l;
            }
            left_v = v;
            ul_v = up_v;
        }
    }
}

/// [`clump_vec`] with the cap given (tests use small caps to exercise splitting).
fn clump_capped(
    mut buf: Vec<u32>,
    rows: usize,
    cols: usize,
    four: bool,
    cap: usize,
) -> (Vec<u32>, Vec<u32>) {
    let n = rows * cols;
    debug_assert_eq!(buf.len(), n);
    if n == 0 || buf.len() != n {
        return (vec![0; n], vec![n as u32]);
    }
    // Pass 1: provisional labels replace the clusters, row by row; the clusters of the row
    // above are kept aside, since its pixels already hold labels.
    let mut labels = Labels::new(n);
    let zeros = vec![0u32; cols];
    let mut up_vals = vec![0u32; cols];
    for y in 0..rows {
        let (above, rest) = buf.split_at_mut(y * cols);
        let row = &mut rest[..cols];
        let up = if y > 0 {
            &above[(y - 1) * cols..]
        } else {
            &zeros[..]
        };
        if four {
            labels.row4(row, up, &mut up_vals);
        } else {
            labels.row8(row, up, &mut up_vals);
        }
    }
    let Labels {
        mut parent,
        mut count,
        next,
    } = labels;
    parent.truncate(next as usize);
    count.truncate(next as usize);
    // Flatten: a parent is always smaller than its child, so one ascending sweep suffices.
    // Then gather each component's size at its root.
    for l in 1..parent.len() {
        let up = parent[parent[l] as usize];
        parent[l] = up;
        if up as usize != l {
            count[up as usize] += count[l];
        }
    }
    let big = (cap as u32).saturating_add(1);
    if let Some((final_id, mut size)) = ids_by_root(&parent, &count, big) {
        // Pass 2 when no component needs splitting: one lookup per pixel.
        for px in buf.iter_mut() {
            *px = final_id[*px as usize];
        }
        set_null_count(&mut size, n);
        return (buf, size);
    }
    // Pass 2 with capped searches: IDs in raster order of first pixels. Pixels before the
    // current one hold final IDs; after it, provisional labels, except those a capped search
    // has already taken (marked in `grown`).
    let mut id = 0u32;
    // The IDs of the clumps grown by a capped search, and their sizes.
    let mut searched: Vec<(u32, u32)> = Vec::new();
    let mut final_id = zeroed::<u32>(parent.len());
    let mut grown: Vec<u64> = Vec::new();
    let mut stack: Vec<(u32, u32)> = Vec::new();
    for p in 0..n {
        if !grown.is_empty() && is_set(&grown, p) {
            continue;
        }
        let l = buf[p];
        if l == 0 {
            continue;
        }
        let root = parent[l as usize];
        if count[root as usize] <= big {
            let f = final_id[root as usize];
            let new = f == 0;
            id += u32::from(new);
            let f = if new { id } else { f };
            final_id[root as usize] = f;
            buf[p] = f;
        } else {
            if grown.is_empty() {
                grown = vec![0u64; n.div_ceil(64)];
            }
            id += 1;
            let search = Search {
                parent: &parent,
                rows,
                cols,
                four,
                cap,
            };
            searched.push((id, search.grow(&mut buf, &mut grown, &mut stack, p, id)));
        }
    }
    // Sizes gathered per label rather than per pixel (a branch per new ID would be
    // mispredicted about as often as taken).
    let mut size = zeroed::<u32>(id as usize + 1);
    for (&f, &c) in final_id.iter().zip(&count) {
        size[f as usize] = c;
    }
    for (f, c) in searched {
        size[f as usize] = c;
    }
    set_null_count(&mut size, n);
    (buf, size)
}

/// Sets `size[0]`, the null pixels' count, to the `n` pixels less those the IDs hold.
fn set_null_count(size: &mut [u32], n: usize) {
    let labelled: u32 = size[1..].iter().sum();
    size[0] = n as u32 - labelled;
}

/// The final ID of every provisional label and the pixels per final ID (index 0 not set),
/// if no component is larger than `big` pixels (else `None`: the cap splits some, and their
/// clumps' IDs depend on the searches).
///
/// `parent` is flattened (every label points at its root) and `count` holds each root's
/// component size. A component's root is the label of its first pixel in raster order (that
/// pixel has no earlier neighbour in the component, so it took a fresh label, and every other
/// pixel's label came later), so numbering the roots in label order numbers the components
/// in raster order of their first pixels, as pyshepseg does.
fn ids_by_root(parent: &[u32], count: &[u32], big: u32) -> Option<(Vec<u32>, Vec<u32>)> {
    let mut final_id = zeroed::<u32>(parent.len());
    let mut id = 0u32;
    let mut too_big = false;
    for l in 1..parent.len() {
        let root = parent[l];
        let is_root = root as usize == l;
        id += u32::from(is_root);
        too_big |= is_root && count[l] > big;
        // A root's parent is itself, so its own ID is read only after it is written.
        final_id[l] = if is_root { id } else { final_id[root as usize] };
    }
    if too_big {
        return None;
    }
    let mut size = zeroed::<u32>(id as usize + 1);
    for l in 1..parent.len() {
        // Non-roots write their partial counts to slot 0, which `set_null_count` sets.
        let slot = if parent[l] as usize == l {
            final_id[l]
        } else {
            0
        };
        size[slot as usize] = count[l];
    }
    Some((final_id, size))
}

/// Sets bit `p` of `bits`.
#[inline(always)]
fn set(bits: &mut [u64], p: usize) {
    bits[p / 64] |= 1 << (p % 64);
}

/// Whether bit `p` of `bits` is set.
#[inline(always)]
fn is_set(bits: &[u64], p: usize) -> bool {
    bits[p / 64] >> (p % 64) & 1 != 0
}

/// Calls `visit(y, x)` for each neighbour of `(sy, sx)` in pyshepseg's clump search order:
/// columns outer, rows inner, the centre skipped (it is already marked).
#[inline(always)]
fn search_order(
    sy: usize,
    sx: usize,
    rows: usize,
    cols: usize,
    four: bool,
    mut visit: impl FnMut(usize, usize),
) {
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
        return;
    }
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

/// A capped search in pass 2: the flattened union-find (so `parent[label]` is the label's
/// root), the shape, the connectivity and the cap.
struct Search<'a> {
    parent: &'a [u32],
    rows: usize,
    cols: usize,
    four: bool,
    cap: usize,
}

impl Search<'_> {
    /// pyshepseg's clump growth from seed `p` (the first pixel of its component not yet in a
    /// clump): a depth-first search on an explicit stack, pixels given `id` and marked in
    /// `grown` when pushed, neighbours visited column by column (x outer, y inner), stopping
    /// once `cap` pixels beyond the seed are marked. A neighbour joins if it is in the seed's
    /// component (same root; for a neighbour that is the same as having the seed's cluster) and
    /// not yet in a clump: after `p` and not marked, as every pixel of the component before
    /// `p` is already in one. Returns the clump's pixel count.
    fn grow(
        &self,
        buf: &mut [u32],
        grown: &mut [u64],
        stack: &mut Vec<(u32, u32)>,
        p: usize,
        id: u32,
    ) -> u32 {
        let Search {
            parent,
            rows,
            cols,
            four,
            cap,
        } = *self;
        let root = parent[buf[p] as usize];
        buf[p] = id;
        set(grown, p);
        stack.clear();
        stack.push(((p / cols) as u32, (p % cols) as u32));
        let mut size = 0usize;
        while size < cap {
            let Some((sy, sx)) = stack.pop() else { break };
            let (sy, sx) = (sy as usize, sx as usize);
            let visit = |cy: usize, cx: usize| {
                let q = cy * cols + cx;
                if q > p && !is_set(grown, q) && parent[buf[q] as usize] == root {
                    buf[q] = id;
                    set(grown, q);
                    size += 1;
                    stack.push((cy as u32, cx as u32));
                }
            };
            search_order(sy, sx, rows, cols, four, visit);
        }
        size as u32 + 1
    }
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

/// A clumping job for the test oracle: the cluster image (row-major, 0 = null), its shape, the
/// connectivity and the cap on pixels a clump gathers beyond its seed.
#[cfg(test)]
struct Clumping<'a> {
    input: &'a [u32],
    rows: usize,
    cols: usize,
    four: bool,
    cap: usize,
}

#[cfg(test)]
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
            let visit = |cy: usize, cx: usize| {
                let q = cy * cols + cx;
                if out[q] == 0 && input[q] == val {
                    out[q] = id;
                    size += 1;
                    stack.push((cy as u32, cx as u32));
                }
            };
            search_order(sy, sx, rows, cols, four, visit);
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
        for case in 0..3000 {
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
                let (expect, n) = clump_by_search(&c);
                let mut expect_size = vec![0u32; n as usize + 1];
                for &id in &expect {
                    expect_size[id as usize] += 1;
                }
                assert_eq!(
                    clump_capped(input.clone(), rows, cols, four, cap),
                    (expect, expect_size),
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
