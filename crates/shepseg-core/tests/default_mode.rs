//! The default mode's definition, written as plainly as possible, against the optimised core.
//!
//! The default mode is a function of the image alone, so that a tiled run can reproduce it
//! exactly: clumps without a size cap; single-pixel elimination decided scan by scan from the
//! previous scan's labels, never into the null segment; small-segment elimination on exact
//! sums, with means and distances in `f64` and ties to the smallest segment ID; final IDs in
//! the order of each segment's first pixel in raster order. [`reference`] computes that with
//! whole-image scans and no cleverness; the tests compare it with [`segment`].

use std::collections::{BTreeSet, VecDeque};

use ndarray::{Array2, Array3};
use shepseg_core::{segment, KMeansModel, MaxSpectralDiff, Pixel, SegmentParams};

mod common;
use common::{random_case, Rng};

/// The neighbours of `(r, c)` in the core's order (rows outer, columns inner), itself excluded.
fn neighbours(rows: usize, cols: usize, r: usize, c: usize, four: bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for rr in r.saturating_sub(1)..=(r + 1).min(rows - 1) {
        for cc in c.saturating_sub(1)..=(c + 1).min(cols - 1) {
            let diagonal = rr != r && cc != c;
            if (rr, cc) != (r, c) && !(four && diagonal) {
                out.push((rr, cc));
            }
        }
    }
    out
}

/// The default mode by its definition.
fn reference<T: Pixel>(
    img: &Array3<T>,
    null: Option<T>,
    p: &SegmentParams,
    model: &KMeansModel,
) -> Array2<u32> {
    let (bands, rows, cols) = img.dim();
    let four = p.four_connected;
    let px = |r: usize, c: usize| -> Vec<T> { (0..bands).map(|b| img[[b, r, c]]).collect() };
    let is_null = |r: usize, c: usize| px(r, c).iter().any(|v| v.is_null(null));
    // Clusters, then clumps numbered by their first pixel, no cap.
    let pred = model.predictor();
    let cluster = Array2::from_shape_fn((rows, cols), |(r, c)| {
        if is_null(r, c) {
            0
        } else {
            let x: Vec<f64> = px(r, c).iter().map(|v| v.to_f64()).collect();
            pred.nearest(&x, 0).expect("finite pixel") as u32 + 1
        }
    });
    let mut seg = Array2::<u32>::zeros((rows, cols));
    let mut next = 0;
    for r0 in 0..rows {
        for c0 in 0..cols {
            if cluster[[r0, c0]] == 0 || seg[[r0, c0]] != 0 {
                continue;
            }
            next += 1;
            seg[[r0, c0]] = next;
            let mut q = VecDeque::from([(r0, c0)]);
            while let Some((r, c)) = q.pop_front() {
                for (rr, cc) in neighbours(rows, cols, r, c, four) {
                    if seg[[rr, cc]] == 0 && cluster[[rr, cc]] == cluster[[r, c]] {
                        seg[[rr, cc]] = next;
                        q.push_back((rr, cc));
                    }
                }
            }
        }
    }
    let sizes = |seg: &Array2<u32>| {
        let mut size = vec![0u64; next as usize + 1];
        for &s in seg.iter() {
            size[s as usize] += 1;
        }
        size
    };
    // Single pixels, scan by scan: each decided on the labels the scan began with.
    loop {
        let size = sizes(&seg);
        let mut merges = Vec::new();
        for r in 0..rows {
            for c in 0..cols {
                let s = seg[[r, c]];
                if s == 0 || size[s as usize] != 1 {
                    continue;
                }
                let mut best: Option<(T::Dist, u32)> = None;
                for (rr, cc) in neighbours(rows, cols, r, c, four) {
                    let t = seg[[rr, cc]];
                    if t == 0 || size[t as usize] <= 1 {
                        continue;
                    }
                    let mut d = T::DIST_ZERO;
                    for b in 0..bands {
                        d = T::add_sq_diff(d, img[[b, r, c]], img[[b, rr, cc]]);
                    }
                    if best.is_none_or(|(m, _)| d < m) {
                        best = Some((d, t));
                    }
                }
                if let Some((_, t)) = best {
                    merges.push(((r, c), t));
                }
            }
        }
        if merges.is_empty() {
            break;
        }
        for (pos, t) in merges {
            seg[pos] = t;
        }
    }
    // Small segments, size by size, pass by pass, on exact sums.
    let thr = p
        .max_spectral_diff
        .resolve(model, p.spect_dist_pcntile)
        .squared();
    let mut size = sizes(&seg);
    let mut sum = vec![0i128; (next as usize + 1) * bands];
    for ((r, c), &s) in seg.indexed_iter() {
        for b in 0..bands {
            sum[s as usize * bands + b] += img[[b, r, c]].exact();
        }
    }
    let mean = |sum: &[i128], size: &[u64], s: u32| -> Vec<f64> {
        (0..bands)
            .map(|b| sum[s as usize * bands + b] as f64 * T::EXACT_UNIT / size[s as usize] as f64)
            .collect()
    };
    for t in 1..p.min_segment_size as u64 {
        let mut ids: Vec<u32> = (1..=next).filter(|&s| size[s as usize] == t).collect();
        let mut passes = 0;
        let mut prev = None;
        while prev != Some(ids.len()) && passes < 10 {
            prev = Some(ids.len());
            let mut nbrs = vec![BTreeSet::new(); next as usize + 1];
            for ((r, c), &s) in seg.indexed_iter() {
                for (rr, cc) in neighbours(rows, cols, r, c, four) {
                    let o = seg[[rr, cc]];
                    if s != 0 && o != 0 && o != s {
                        nbrs[s as usize].insert(o);
                    }
                }
            }
            let mut merges = Vec::new();
            for &id in &ids {
                let own = mean(&sum, &size, id);
                let mut best: Option<(f64, u32)> = None;
                // Ascending IDs with a strict comparison: the smallest ID wins ties.
                for &o in &nbrs[id as usize] {
                    if size[o as usize] <= t {
                        continue;
                    }
                    let m = mean(&sum, &size, o);
                    let d = own
                        .iter()
                        .zip(&m)
                        .fold(0.0, |acc, (a, b)| acc + (a - b) * (a - b));
                    if best.is_none_or(|(bd, _)| d < bd) {
                        best = Some((d, o));
                    }
                }
                if let Some((d, o)) = best {
                    if d <= thr {
                        merges.push((id, o));
                    }
                }
            }
            for &(id, into) in &merges {
                seg.mapv_inplace(|s| if s == id { into } else { s });
                size[into as usize] += size[id as usize];
                size[id as usize] = 0;
                for b in 0..bands {
                    sum[into as usize * bands + b] += sum[id as usize * bands + b];
                }
            }
            ids.retain(|&s| size[s as usize] == t);
            passes += 1;
        }
    }
    // IDs in the order of each segment's first pixel.
    let mut new_id = vec![0u32; next as usize + 1];
    let mut n = 0;
    seg.mapv(|s| {
        if s != 0 && new_id[s as usize] == 0 {
            n += 1;
            new_id[s as usize] = n;
        }
        new_id[s as usize]
    })
}

fn check<T: Pixel>(case: u64, conv: impl Fn(u64) -> T, null: Option<T>) {
    let mut rng = Rng(case.wrapping_mul(7919) + 1);
    let (img, params, m) = random_case(&mut rng, (28, 12), conv, null);
    let (bands, rows, cols) = img.dim();
    let expected = reference(&img, null, &params, &m);
    let got = segment(&img.view(), null, &params, Some(&m)).unwrap();
    assert_eq!(
        got.segimg, expected,
        "case {case}: {bands} bands, {rows}x{cols}, {params:?}"
    );
    assert_eq!(
        got.num_segments,
        expected.iter().copied().max().unwrap_or(0),
        "case {case}"
    );
}

#[test]
fn default_mode_equals_its_definition_u8() {
    for case in 0..400 {
        check(
            case,
            |v| v as u8,
            if case % 2 == 0 { Some(0u8) } else { None },
        );
    }
}

#[test]
fn default_mode_equals_its_definition_other_types() {
    for case in 0..200 {
        check(case, |v| v as u16 * 3, Some(0u16));
        check(case, |v| v as i16 - 20, Some(-20i16));
        check(case, |v| v as i32 * 1000 - 7, None);
        check(case, |v| v as u32 * 100_000, Some(0u32));
        check(case, |v| v as f32 * 0.37 + 0.001, Some(0.001f32));
    }
}

/// A uniform area far beyond pyshepseg's 10,000-pixel clump cap stays one segment.
#[test]
fn a_large_uniform_area_is_one_segment() {
    let img = Array3::from_shape_fn((1, 300, 300), |(_, r, c)| {
        if (r as i64 - 150).pow(2) + (c as i64 - 150).pow(2) < 130 * 130 {
            10u16
        } else {
            200 + ((r * 7 + c * 13) % 3) as u16
        }
    });
    let m = KMeansModel::new(vec![vec![10.0], vec![201.0]]).unwrap();
    let p = SegmentParams {
        num_clusters: 2,
        ..Default::default()
    };
    let lake = segment(&img.view(), None, &p, Some(&m)).unwrap().segimg;
    assert_eq!(
        lake.iter().filter(|&&s| s == lake[[150, 150]]).count(),
        53_041
    );
    let compat = SegmentParams {
        pyshepseg_compat: true,
        ..p
    };
    let capped = segment(&img.view(), None, &compat, Some(&m))
        .unwrap()
        .segimg;
    assert!(capped.iter().filter(|&&s| s == capped[[150, 150]]).count() <= 10_001);
}

/// A two-pixel segment S (10) between U (0, met first in its pixels' scan) and L (20, the
/// smaller ID: its first pixel comes first in the image), equally near: pyshepseg takes the
/// first met, the default mode the smallest ID, which no tiling can change.
#[test]
fn ties_go_to_the_smallest_id_not_the_first_met() {
    let rows = [
        "LLLLLL", //
        "LUUUUL", //
        "LUSSUL", //
        "LLLLLL",
    ];
    let value = |ch: u8| match ch {
        b'L' => 20u8,
        b'U' => 0,
        _ => 10,
    };
    let img = Array3::from_shape_fn((1, 4, 6), |(_, r, c)| value(rows[r].as_bytes()[c]));
    let m = KMeansModel::new(vec![vec![0.0], vec![10.0], vec![20.0]]).unwrap();
    let p = SegmentParams {
        num_clusters: 3,
        min_segment_size: 3,
        max_spectral_diff: MaxSpectralDiff::Unlimited,
        ..Default::default()
    };
    let default = segment(&img.view(), None, &p, Some(&m)).unwrap().segimg;
    assert_eq!(default[[2, 2]], default[[0, 0]], "S joins L\n{default:?}");
    assert_eq!(default, reference(&img, None, &p, &m));
    let compat = SegmentParams {
        pyshepseg_compat: true,
        ..p
    };
    let pyshepseg = segment(&img.view(), None, &compat, Some(&m))
        .unwrap()
        .segimg;
    assert_eq!(
        pyshepseg[[2, 2]],
        pyshepseg[[1, 1]],
        "S joins U\n{pyshepseg:?}"
    );
}
