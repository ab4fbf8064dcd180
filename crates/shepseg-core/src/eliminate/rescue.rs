//! The fix of pyshepseg's null-merge defect: after elimination, every valid pixel that
//! single-pixel elimination merged into the null segment joins a labelled neighbour instead, so
//! that no valid pixel comes out null.

use super::neighbours::{for_each_neighbour, PixelNeighbours};
use crate::image::Img;
use crate::pixel::Pixel;

/// Undoes pyshepseg's null-merge defect after elimination: every valid pixel left at 0 joins the segment of its spectrally nearest labelled neighbouring pixel
/// (in raster scans applied scan by scan, as single-pixel elimination does). Valid pixels with no
/// labelled pixel reachable (islands enclosed by nulls) become new segments, one per connected
/// group, numbered after `num_segments`. Only the pixels pyshepseg nulled change, so the result
/// equals pyshepseg's everywhere else. Returns `(pixels rescued, new number of segments)`.
pub(crate) fn rescue_nulled_pixels<T: Pixel>(
    img: &Img<T>,
    null: Option<T>,
    seg: &mut [u32],
    num_segments: u32,
    four: bool,
) -> (usize, u32) {
    let (rows, cols) = (img.rows, img.cols);
    let is_null = |p: usize| (0..img.bands).any(|b| img.band_value(b, p).is_null(null));
    let mut lost = Vec::new();
    for (p, &s) in seg.iter().enumerate() {
        if s == 0 && !is_null(p) {
            lost.push(p as u32);
        }
    }
    let rescued = lost.len();
    let pixels = PixelNeighbours::<T, 0>::new(img, four);
    let mut joins: Vec<(u32, u32)> = Vec::new();
    while !lost.is_empty() {
        joins.clear();
        for &p in &lost {
            let p = p as usize;
            if let Some(s) = pixels.nearest(seg, p / cols, p % cols, |s| s != 0) {
                joins.push((p as u32, s));
            }
        }
        if joins.is_empty() {
            break;
        }
        for &(p, s) in &joins {
            seg[p as usize] = s;
        }
        lost.retain(|&p| seg[p as usize] == 0);
    }
    // Islands of valid pixels with no labelled neighbour: one new segment per connected group.
    let mut next = num_segments;
    let mut stack = Vec::new();
    for &start in &lost {
        if seg[start as usize] != 0 {
            continue;
        }
        next += 1;
        seg[start as usize] = next;
        stack.push(start as usize);
        while let Some(p) = stack.pop() {
            for_each_neighbour(rows, cols, p / cols, p % cols, four, |q| {
                if seg[q] == 0 && !is_null(q) {
                    seg[q] = next;
                    stack.push(q);
                }
            });
        }
    }
    (rescued, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eliminate::single::eliminate_single_pixels;

    #[test]
    fn null_absorbs_a_pixel_and_rescue_gives_it_back() {
        // Pixel (0,1) is a single segment whose spectrally nearest neighbour is null.
        let data = [0u8, 1, 100, 0, 100, 100];
        let img = Img {
            data: &data,
            bands: 1,
            rows: 2,
            cols: 3,
        };
        let mut seg = vec![0, 1, 2, 0, 2, 2];
        let n = eliminate_single_pixels(&img, &mut seg, 2, true, false);
        assert_eq!(
            seg,
            vec![0, 0, 1, 0, 1, 1],
            "pyshepseg merges the valid pixel into null"
        );
        let (rescued, n) = rescue_nulled_pixels(&img, Some(0), &mut seg, n, true);
        assert_eq!((rescued, n), (1, 1));
        assert_eq!(seg, vec![0, 1, 1, 0, 1, 1]);
    }

    #[test]
    fn rescue_makes_islands_new_segments() {
        // A valid 2-pixel island (value 5) enclosed by nulls.
        let data = [0u8, 0, 0, 0, 5, 5, 0, 0, 0];
        let img = Img {
            data: &data,
            bands: 1,
            rows: 3,
            cols: 3,
        };
        let mut seg = vec![0; 9];
        let (rescued, n) = rescue_nulled_pixels(&img, Some(0), &mut seg, 4, true);
        assert_eq!((rescued, n), (2, 5));
        assert_eq!(seg, vec![0, 0, 0, 0, 5, 5, 0, 0, 0]);
    }
}
