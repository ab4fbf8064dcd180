//! Seamless tiling: on random images (1-5 bands, every pixel type, nulls, 4- and 8-way) and
//! random tilings analysed by 1-4 threads, the tiles joined equal the whole-image default
//! segmentation pixel for pixel, IDs included; every segment is connected and no valid pixel
//! is null.

use std::collections::VecDeque;

use ndarray::{s, Array2, Array3};
use shepseg_core::seamless::{analyse_tile, join_tiles, relabel, TileFrame, TilePart};
use shepseg_core::{segment, KMeansModel, Pixel, SegmentParams};

mod common;
use common::{image, model, random_case, rng_at, Rng};

/// Cuts `n` into 1 to 4 runs of random lengths (at least 1 each): the starts.
fn cuts(rng: &mut Rng, n: usize) -> Vec<usize> {
    let pieces = 1 + rng.below(4.min(n as u64)) as usize;
    let mut starts: Vec<usize> = (0..pieces - 1)
        .map(|_| 1 + rng.below(n as u64 - 1) as usize)
        .collect();
    starts.push(0);
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// The image segmented tile by tile on `threads` threads, joined and relabelled.
fn tiled<T: Pixel>(
    img: &Array3<T>,
    null: Option<T>,
    params: &SegmentParams,
    m: &KMeansModel,
    (row_starts, col_starts): (&[usize], &[usize]),
    threads: usize,
) -> Array2<u32> {
    let (_, rows, cols) = img.dim();
    let mut frames = Vec::new();
    for (ri, &r0) in row_starts.iter().enumerate() {
        let r1 = row_starts.get(ri + 1).copied().unwrap_or(rows);
        for (ci, &c0) in col_starts.iter().enumerate() {
            let c1 = col_starts.get(ci + 1).copied().unwrap_or(cols);
            frames.push(TileFrame {
                raster_rows: rows as u64,
                raster_cols: cols as u64,
                row0: r0 as u64,
                col0: c0 as u64,
                rows: (r1 - r0) as u64,
                cols: (c1 - c0) as u64,
            });
        }
    }
    let analyse = |f: &TileFrame| {
        let (r0, c0, rh, rw) = f.read_window();
        let (r0, c0, rh, rw) = (r0 as usize, c0 as usize, rh as usize, rw as usize);
        let window = img.slice(s![.., r0..r0 + rh, c0..c0 + rw]);
        analyse_tile(&window, *f, null, params, m).unwrap()
    };
    // Tiles dealt round-robin to the threads, then put back in grid order.
    let mut done: Vec<(usize, Vec<u32>, TilePart)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let frames = &frames;
                let analyse = &analyse;
                scope.spawn(move || {
                    (t..frames.len())
                        .step_by(threads)
                        .map(|k| {
                            let a = analyse(&frames[k]);
                            (k, a.labels, a.part)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    done.sort_by_key(|d| d.0);
    let parts: Vec<TilePart> = done.iter().map(|d| d.2.clone()).collect();
    let thr = params
        .max_spectral_diff
        .resolve(m, params.spect_dist_pcntile)
        .squared();
    let joined = join_tiles(
        parts,
        params.min_segment_size,
        thr,
        params.four_connected,
        threads,
    )
    .unwrap();
    let mut out = Array2::<u32>::zeros((rows, cols));
    for ((_, mut labels, part), map) in done.into_iter().zip(&joined.maps) {
        relabel(&mut labels, map);
        let f = part.frame;
        let (r0, c0) = (f.row0 as usize, f.col0 as usize);
        let tile = Array2::from_shape_vec((f.rows as usize, f.cols as usize), labels).unwrap();
        out.slice_mut(s![r0..r0 + f.rows as usize, c0..c0 + f.cols as usize])
            .assign(&tile);
    }
    assert_eq!(joined.num_segments, out.iter().copied().max().unwrap_or(0));
    out
}

/// Every segment ID's pixels form one connected set.
fn assert_connected(seg: &Array2<u32>, four: bool, what: &str) {
    let (rows, cols) = seg.dim();
    let n = seg.iter().copied().max().unwrap_or(0) as usize;
    let mut seen = Array2::<bool>::from_elem((rows, cols), false);
    let mut started = vec![false; n + 1];
    for r0 in 0..rows {
        for c0 in 0..cols {
            let id = seg[[r0, c0]];
            if id == 0 || seen[[r0, c0]] {
                continue;
            }
            assert!(
                !started[id as usize],
                "{what}: segment {id} is not connected"
            );
            started[id as usize] = true;
            seen[[r0, c0]] = true;
            let mut q = VecDeque::from([(r0, c0)]);
            while let Some((r, c)) = q.pop_front() {
                for rr in r.saturating_sub(1)..=(r + 1).min(rows - 1) {
                    for cc in c.saturating_sub(1)..=(c + 1).min(cols - 1) {
                        let diagonal = rr != r && cc != c;
                        if (four && diagonal) || seen[[rr, cc]] || seg[[rr, cc]] != id {
                            continue;
                        }
                        seen[[rr, cc]] = true;
                        q.push_back((rr, cc));
                    }
                }
            }
        }
    }
}

fn check<T: Pixel>(case: u64, conv: impl Fn(u64) -> T, null: Option<T>) {
    let mut rng = Rng(case.wrapping_mul(104_729) + 3);
    let (img, params, m) = random_case(&mut rng, (40, 20), conv, null);
    let (bands, rows, cols) = img.dim();
    let whole = segment(&img.view(), null, &params, Some(&m)).unwrap();
    let (rs, cs) = (cuts(&mut rng, rows), cuts(&mut rng, cols));
    let threads = 1 + rng.below(4) as usize;
    let got = tiled(&img, null, &params, &m, (&rs, &cs), threads);
    let what = format!(
        "case {case}: {bands} bands, {rows}x{cols}, tiles at rows {rs:?} cols {cs:?}, {threads} threads, {params:?}"
    );
    assert_eq!(got, whole.segimg, "{what}");
    assert_connected(&got, params.four_connected, &what);
    for r in 0..rows {
        for c in 0..cols {
            let valid = (0..bands).all(|b| !img[[b, r, c]].is_null(null));
            assert_eq!(valid, got[[r, c]] != 0, "{what}: pixel ({r}, {c})");
        }
    }
}

#[test]
fn tiled_equals_whole_image_u8() {
    for case in 0..600 {
        check(
            case,
            |v| v as u8,
            if case % 2 == 0 { Some(0u8) } else { None },
        );
    }
}

#[test]
fn tiled_equals_whole_image_other_types() {
    for case in 0..250 {
        check(case, |v| v as u16 * 3, Some(0u16));
        check(case, |v| v as i16 - 20, Some(-20i16));
        check(case, |v| v as i32 * 1000 - 7, None);
        check(case, |v| v as u32 * 100_000, Some(0u32));
        check(case, |v| v as f32 * 0.37 + 0.001, Some(0.001f32));
    }
}

/// One-pixel tiles are the hardest case: every single pixel's run crosses a tile edge.
#[test]
fn one_pixel_tiles_equal_the_whole_image() {
    for case in 0..150 {
        let mut rng = Rng(case * 31 + 5);
        let (rows, cols) = (1 + rng.below(12) as usize, 1 + rng.below(12) as usize);
        let img = image(&mut rng, 2, rows, cols, |v| v as u16);
        let m = model(&mut rng, 2, 5);
        let params = SegmentParams {
            num_clusters: 5,
            min_segment_size: 4,
            four_connected: case % 2 == 0,
            ..Default::default()
        };
        let whole = segment(&img.view(), Some(0), &params, Some(&m)).unwrap();
        let rs: Vec<usize> = (0..rows).collect();
        let cs: Vec<usize> = (0..cols).collect();
        let got = tiled(&img, Some(0), &params, &m, (&rs, &cs), 2);
        assert_eq!(got, whole.segimg, "case {case}");
    }
}

/// A large noisy image: passes with many thousands of segments of one size, whose merges
/// are decided on several threads, give the whole image's result.
#[test]
fn many_small_segments_decided_on_threads_equal_the_whole_image() {
    let mut rng = Rng(99);
    let (rows, cols) = (600, 500);
    let img = Array3::from_shape_fn((2, rows, cols), |(b, r, c)| {
        ((r * 31 + c * 17 + b * 7) % 13) as u16 * 9 + (rng_at(b, r, c) % 40) as u16
    });
    let m = model(&mut rng, 2, 40);
    let params = SegmentParams {
        num_clusters: 40,
        min_segment_size: 30,
        ..Default::default()
    };
    let whole = segment(&img.view(), None, &params, Some(&m)).unwrap();
    for threads in [1, 3] {
        let got = tiled(
            &img,
            None,
            &params,
            &m,
            (&[0, 128, 256], &[0, 200]),
            threads,
        );
        assert_eq!(got, whole.segimg, "{threads} threads");
    }
}

/// Images where the order of tied segments depends on counting only clump pixels (not the
/// single pixels that joined them) towards a segment's key, as the whole image numbers its
/// clumps: found by searching 40,000 random images with joined pixels counted (which fails
/// these and no earlier ones).
#[test]
fn tie_order_follows_clump_pixels_only() {
    for case in [12654u64, 26463, 28617, 39076] {
        check(
            case,
            |v| v as u8,
            if case % 2 == 0 { Some(0u8) } else { None },
        );
    }
}
