//! Single-pixel elimination as pyshepseg's: each one-pixel segment takes the segment of its
//! spectrally nearest neighbouring pixel, in raster scans applied scan by scan until nothing
//! changes, before small-segment elimination (Shepherd et al. 2019, section 2.3).

use super::neighbours::PixelNeighbours;
#[cfg(test)]
use super::segment_sizes;
use super::Renumbering;
use crate::image::Img;
use crate::pixel::Pixel;

/// Single-pixel elimination; returns the largest ID after relabelling.
///
/// With `compat`, pyshepseg's two defects are kept: the null segment counts as a neighbour
/// larger than one pixel, so it can absorb a valid pixel, and a lone null pixel (an image with
/// exactly one) joins a valid segment. Without it (the default mode) null pixels are never
/// candidates and the null segment never absorbs: every valid pixel keeps a segment.
#[cfg(test)]
pub(crate) fn eliminate_single_pixels<T: Pixel>(
    img: &Img<T>,
    seg: &mut [u32],
    max_id: u32,
    four: bool,
    compat: bool,
) -> u32 {
    let size = segment_sizes(seg, max_id);
    eliminate_single_pixels_sized(img, seg, size, four, compat).apply(seg)
}

/// [`eliminate_single_pixels`] given the pixels per segment (`size`, index 0 the nulls), and
/// leaving the relabelling to contiguous IDs to be applied (so the caller can fuse it with its
/// next pass over the image).
pub(crate) fn eliminate_single_pixels_sized<T: Pixel>(
    img: &Img<T>,
    seg: &mut [u32],
    size: Vec<u32>,
    four: bool,
    compat: bool,
) -> Renumbering {
    let args = (img, seg, size, four, compat);
    match img.bands {
        1 => single_pixels::<T, 1>(args),
        2 => single_pixels::<T, 2>(args),
        3 => single_pixels::<T, 3>(args),
        4 => single_pixels::<T, 4>(args),
        5 => single_pixels::<T, 5>(args),
        6 => single_pixels::<T, 6>(args),
        7 => single_pixels::<T, 7>(args),
        8 => single_pixels::<T, 8>(args),
        _ => single_pixels::<T, 0>(args),
    }
}

/// [`eliminate_single_pixels`] with the band count fixed at `NB` (0: any count).
fn single_pixels<T: Pixel, const NB: usize>(
    (img, seg, mut size, four, compat): (&Img<T>, &mut [u32], Vec<u32>, bool, bool),
) -> Renumbering {
    let pixels = PixelNeighbours::<T, NB>::new(img, four);
    let (rows, cols) = (img.rows, img.cols);
    // A neighbour's segment can take a single pixel when it is larger than one pixel; the
    // null segment only in compatibility mode (pyshepseg's defect).
    let absorbs = |size: &[u32], nbr: u32| size[nbr as usize] > 1 && (compat || nbr != 0);
    let mut merges: Vec<(u32, u32)> = Vec::new();
    // Single pixels only ever disappear, so the first scan, over the whole image row by row
    // (no division per pixel), finds every candidate; those it cannot merge are the
    // candidates of the later scans.
    let mut candidates: Vec<u32> = Vec::new();
    for i in 0..rows {
        for j in 0..cols {
            let p = i * cols + j;
            let s = seg[p];
            if size[s as usize] != 1 || !(compat || s != 0) {
                continue;
            }
            match pixels.nearest(seg, i, j, |nbr| absorbs(&size, nbr)) {
                Some(nbr) => merges.push((p as u32, nbr)),
                None => candidates.push(p as u32),
            }
        }
    }
    while !merges.is_empty() {
        for &(p, new) in &merges {
            let old = seg[p as usize];
            seg[p as usize] = new;
            size[old as usize] = 0;
            size[new as usize] += 1;
        }
        candidates.retain(|&p| size[seg[p as usize] as usize] == 1);
        merges.clear();
        for &p in &candidates {
            let p = p as usize;
            if let Some(nbr) = pixels.nearest(seg, p / cols, p % cols, |nbr| absorbs(&size, nbr)) {
                merges.push((p as u32, nbr));
            }
        }
    }
    Renumbering::of_sizes(&size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eliminate::neighbours::for_each_neighbour;
    use crate::eliminate::relabel;

    #[test]
    fn single_pixel_joins_nearest_pixel_segment() {
        // One band, 1 x 3: [10, 12, 30]; segments [1, 2, 3] with 1 and 3 larger via row 2.
        let data = [10u8, 12, 30, 10, 50, 30];
        let img = Img {
            data: &data,
            bands: 1,
            rows: 2,
            cols: 3,
        };
        let mut seg = vec![1, 2, 3, 1, 4, 3];
        let n = eliminate_single_pixels(&img, &mut seg, 4, true, false);
        // Pixel of segment 2 (value 12) is nearest to 10 (segment 1); segment 4 (50) to 30.
        assert_eq!(seg, vec![1, 1, 2, 1, 2, 2]);
        assert_eq!(n, 2);
    }

    #[test]
    fn lone_null_pixel_joins_only_in_compat() {
        // One column [1, null, 1, 1]: pyshepseg lets the lone null pixel (segment 0 of size 1)
        // join segment 2, and then the single pixel above joins through it.
        let data = [1u8, 0, 1, 1];
        let img = Img {
            data: &data,
            bands: 1,
            rows: 4,
            cols: 1,
        };
        let mut compat = vec![1, 0, 2, 2];
        eliminate_single_pixels(&img, &mut compat, 2, true, true);
        assert_eq!(compat, vec![1, 1, 1, 1]);
        let mut fixed = vec![1, 0, 2, 2];
        eliminate_single_pixels(&img, &mut fixed, 2, true, false);
        assert_eq!(fixed, vec![1, 0, 2, 2]);
    }

    /// pyshepseg's single-pixel elimination as written (with `compat`; without it the null
    /// segment neither joins nor absorbs): each scan visits every pixel, and the merges it
    /// finds (sizes as they stood when it began) are applied when it ends.
    fn single_pixels_by_full_scans<T: Pixel>(
        img: &Img<T>,
        seg: &mut [u32],
        max_id: u32,
        four: bool,
        compat: bool,
    ) -> u32 {
        let (rows, cols) = (img.rows, img.cols);
        let mut size = segment_sizes(seg, max_id);
        loop {
            let mut merges = Vec::new();
            for p in 0..rows * cols {
                if size[seg[p] as usize] != 1 || !(compat || seg[p] != 0) {
                    continue;
                }
                let mut best: Option<(T::Dist, u32)> = None;
                for_each_neighbour(rows, cols, p / cols, p % cols, four, |q| {
                    if size[seg[q] as usize] > 1 && (compat || seg[q] != 0) {
                        let mut d = T::DIST_ZERO;
                        for b in 0..img.bands {
                            d = T::add_sq_diff(d, img.band_value(b, p), img.band_value(b, q));
                        }
                        if best.is_none_or(|(m, _)| m < T::DIST_ZERO || d < m) {
                            best = Some((d, seg[q]));
                        }
                    }
                });
                if let Some((_, s)) = best {
                    merges.push((p, s));
                }
            }
            if merges.is_empty() {
                return relabel(seg, &size);
            }
            for (p, s) in merges {
                size[seg[p] as usize] = 0;
                size[s as usize] += 1;
                seg[p] = s;
            }
        }
    }

    /// The row-by-row first scan and the candidate scans after it equal full scans, on random
    /// images of every band count up to 9 (the fixed and the run-time band loops), `u16` and
    /// `f32`, with nulls, both connectivities, with and without the lone-null quirk.
    #[test]
    fn single_pixel_elimination_equals_full_scans() {
        use crate::clump::clump_vec;
        let mut rng = crate::rng::SplitMix64::new(11);
        for case in 0..2000 {
            let rows = 1 + rng.below(30);
            let cols = 1 + rng.below(30);
            let bands = 1 + case % 9;
            let levels = 2 + rng.below(4);
            let data: Vec<u16> = (0..bands * rows * cols)
                .map(|_| rng.below(levels) as u16 * 1000)
                .collect();
            let four = case % 2 == 0;
            let compat = case % 3 == 0;
            // Clusters from the first band, null where it is 0.
            let classes: Vec<u32> = data[..rows * cols].iter().map(|&v| v as u32).collect();
            let (seg0, max_id) = clump_vec(classes, rows, cols, four);
            let floats: Vec<f32> = data.iter().map(|&v| v as f32 / 7.0).collect();
            let ints = Img {
                data: &data,
                bands,
                rows,
                cols,
            };
            let reals = Img {
                data: &floats,
                bands,
                rows,
                cols,
            };
            let (mut a, mut b) = (seg0.clone(), seg0.clone());
            let na = eliminate_single_pixels(&ints, &mut a, max_id, four, compat);
            let nb = single_pixels_by_full_scans(&ints, &mut b, max_id, four, compat);
            assert_eq!((na, &a), (nb, &b), "u16 case {case}: {rows}x{cols}x{bands}");
            let (mut a, mut b) = (seg0.clone(), seg0);
            let na = eliminate_single_pixels(&reals, &mut a, max_id, four, compat);
            let nb = single_pixels_by_full_scans(&reals, &mut b, max_id, four, compat);
            assert_eq!((na, &a), (nb, &b), "f32 case {case}: {rows}x{cols}x{bands}");
        }
    }
}
