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
pub(crate) fn clump_slice(input: &[u32], rows: usize, cols: usize, four: bool) -> (Vec<u32>, u32) {
    let mut out = vec![0u32; rows * cols];
    let mut stack: Vec<(u32, u32)> = Vec::new();
    let mut id = 0u32;
    for y in 0..rows {
        for x in 0..cols {
            let p = y * cols + x;
            let val = input[p];
            if val == 0 || out[p] != 0 {
                continue;
            }
            id += 1;
            out[p] = id;
            stack.clear();
            stack.push((y as u32, x as u32));
            let mut size = 0usize;
            while size < MAX_CLUMP_SIZE {
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
