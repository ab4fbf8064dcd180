//! Property tests of the whole segmentation on random small images, and its edge cases.

use std::collections::VecDeque;

use ndarray::{Array2, Array3};
use proptest::prelude::*;
use shepseg_core::{segment, KMeansModel, MaxSpectralDiff, SegmentParams, SegmentationResult};

/// Checks the invariants every default-mode result must hold.
fn check_invariants(img: &Array3<u8>, null: Option<u8>, four: bool, res: &SegmentationResult) {
    let (_, rows, cols) = img.dim();
    let seg = &res.segimg;
    assert_eq!(seg.dim(), (rows, cols));
    let is_null = |r: usize, c: usize| {
        null.is_some_and(|n| img.slice(ndarray::s![.., r, c]).iter().any(|&v| v == n))
    };
    // Nulls are 0, every valid pixel is labelled.
    for ((r, c), &s) in seg.indexed_iter() {
        assert_eq!(s == 0, is_null(r, c), "pixel ({r}, {c}) = {s}");
    }
    // IDs are exactly 1..=N.
    let n = res.num_segments as usize;
    let mut seen = vec![false; n + 1];
    for &s in seg.iter() {
        assert!((s as usize) <= n, "id {s} above {n}");
        seen[s as usize] = true;
    }
    assert!(seen[1..].iter().all(|&v| v), "IDs not contiguous 1..{n}");
    // Every segment is connected.
    let mut visited = Array2::from_elem((rows, cols), false);
    let mut components = vec![0usize; n + 1];
    for r0 in 0..rows {
        for c0 in 0..cols {
            let id = seg[[r0, c0]];
            if id == 0 || visited[[r0, c0]] {
                continue;
            }
            components[id as usize] += 1;
            let mut q = VecDeque::from([(r0, c0)]);
            visited[[r0, c0]] = true;
            while let Some((r, c)) = q.pop_front() {
                for dr in -1i64..=1 {
                    for dc in -1i64..=1 {
                        if (dr == 0 && dc == 0) || (four && dr != 0 && dc != 0) {
                            continue;
                        }
                        let (rr, cc) = (r as i64 + dr, c as i64 + dc);
                        if rr < 0 || cc < 0 || rr >= rows as i64 || cc >= cols as i64 {
                            continue;
                        }
                        let (rr, cc) = (rr as usize, cc as usize);
                        if !visited[[rr, cc]] && seg[[rr, cc]] == id {
                            visited[[rr, cc]] = true;
                            q.push_back((rr, cc));
                        }
                    }
                }
            }
        }
    }
    for (id, &k) in components.iter().enumerate().skip(1) {
        assert_eq!(k, 1, "segment {id} has {k} connected parts");
    }
}

fn image_strategy() -> impl Strategy<Value = (Array3<u8>, Option<u8>)> {
    (1usize..=3, 1usize..=14, 1usize..=14, 1u8..=8, any::<bool>()).prop_flat_map(
        |(bands, rows, cols, levels, with_null)| {
            let values = proptest::collection::vec(0..levels, bands * rows * cols);
            values.prop_map(move |v| {
                let img = Array3::from_shape_vec((bands, rows, cols), v).unwrap();
                (img, with_null.then_some(0))
            })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn default_mode_invariants(
        (img, null) in image_strategy(),
        k in 1usize..=8,
        min_seg in 1usize..=12,
        four in any::<bool>(),
        fixed in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let params = SegmentParams {
            num_clusters: k,
            min_segment_size: min_seg,
            four_connected: four,
            fixed_kmeans_init: fixed,
            cluster_subsample_pcnt: 50.0,
            seed,
            ..Default::default()
        };
        let a = segment(&img.view(), null, &params, None).unwrap();
        check_invariants(&img, null, four, &a);
        // The same input and parameters give the same output.
        let b = segment(&img.view(), null, &params, None).unwrap();
        prop_assert_eq!(&a, &b.clone_without_timings(&a));
    }

    #[test]
    fn given_model_and_compat_mode_keep_ids_contiguous(
        (img, null) in image_strategy(),
        four in any::<bool>(),
        min_seg in 1usize..=12,
    ) {
        let bands = img.dim().0;
        let model = KMeansModel::new((0..4).map(|i| vec![i as f64 * 2.0; bands]).collect()).unwrap();
        for compat in [false, true] {
            let params = SegmentParams {
                min_segment_size: min_seg,
                four_connected: four,
                max_spectral_diff: MaxSpectralDiff::Unlimited,
                pyshepseg_compat: compat,
                ..Default::default()
            };
            let r = segment(&img.view(), null, &params, Some(&model)).unwrap();
            let max = r.segimg.iter().copied().max().unwrap_or(0);
            prop_assert_eq!(max, r.num_segments);
            if !compat {
                check_invariants(&img, null, four, &r);
            }
        }
    }
}

/// Timings differ between runs; everything else must not.
trait SameButTimings {
    fn clone_without_timings(&self, like: &SegmentationResult) -> SegmentationResult;
}

impl SameButTimings for SegmentationResult {
    fn clone_without_timings(&self, like: &SegmentationResult) -> SegmentationResult {
        SegmentationResult {
            timings: like.timings,
            ..self.clone()
        }
    }
}

fn run(img: &Array3<u8>, null: Option<u8>, params: SegmentParams) -> SegmentationResult {
    let r = segment(&img.view(), null, &params, None).unwrap();
    check_invariants(img, null, params.four_connected, &r);
    r
}

#[test]
fn edge_all_null() {
    let img = Array3::from_elem((2, 5, 5), 9u8);
    let r = run(&img, Some(9), SegmentParams::default());
    assert_eq!(r.num_segments, 0);
}

#[test]
fn edge_one_pixel() {
    let img = Array3::from_elem((3, 1, 1), 4u8);
    let r = run(&img, None, SegmentParams::default());
    assert_eq!(r.num_segments, 1);
    assert_eq!(r.segimg[[0, 0]], 1);
}

#[test]
fn edge_one_row_one_band() {
    let img = Array3::from_shape_fn((1, 1, 200), |(_, _, c)| (c / 20) as u8 * 10);
    let r = run(
        &img,
        None,
        SegmentParams {
            num_clusters: 5,
            min_segment_size: 5,
            ..Default::default()
        },
    );
    assert!(r.num_segments >= 1);
}

#[test]
fn edge_constant_image() {
    let img = Array3::from_elem((2, 30, 30), 17u8);
    let r = run(&img, None, SegmentParams::default());
    assert_eq!(r.num_segments, 1);
}

#[test]
fn edge_min_segment_size_one_keeps_singles_after_single_pixel_step() {
    let img = Array3::from_shape_fn((1, 10, 10), |(_, r, c)| ((r * 10 + c) % 7) as u8);
    let r = run(
        &img,
        None,
        SegmentParams {
            num_clusters: 7,
            min_segment_size: 1,
            fixed_kmeans_init: true,
            ..Default::default()
        },
    );
    assert_eq!(r.small_segments_eliminated, 0);
}

#[test]
fn edge_more_clusters_than_values() {
    let img = Array3::from_shape_fn((2, 20, 20), |(b, r, _)| (r % 2) as u8 + b as u8);
    for fixed in [true, false] {
        run(
            &img,
            None,
            SegmentParams {
                num_clusters: 60,
                fixed_kmeans_init: fixed,
                cluster_subsample_pcnt: 100.0,
                ..Default::default()
            },
        );
    }
}

#[test]
fn edge_zero_size_is_an_error() {
    for dims in [(0, 3, 3), (1, 0, 3), (1, 3, 0)] {
        let img = Array3::<u16>::zeros(dims);
        let e = segment(&img.view(), None, &SegmentParams::default(), None).unwrap_err();
        assert!(e.to_string().contains("image is empty"), "{e}");
    }
}

#[test]
fn edge_float_nan_is_null() {
    let mut img = Array3::from_shape_fn((2, 12, 12), |(b, r, c)| (r / 4 + c / 4) as f32 + b as f32);
    img[[1, 3, 3]] = f32::NAN;
    let r = segment(
        &img.view(),
        None,
        &SegmentParams {
            num_clusters: 5,
            min_segment_size: 3,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(r.segimg[[3, 3]], 0);
    assert_eq!(r.segimg.iter().filter(|&&v| v == 0).count(), 1);
}

/// Infinities in the sample once made every k-means centre they touched infinite and the fit
/// index out of bounds (a panic on a real float scene); they are null, like NaN.
#[test]
fn edge_float_infinities_are_null() {
    let mut img = Array3::from_shape_fn((2, 40, 40), |(b, r, c)| {
        (r / 8 + c / 8) as f32 * 3.5 + b as f32
    });
    img[[0, 5, 5]] = f32::INFINITY;
    img[[1, 20, 30]] = f32::NEG_INFINITY;
    img[[0, 39, 0]] = f32::NAN;
    let r = segment(
        &img.view(),
        Some(-9999.0),
        &SegmentParams {
            num_clusters: 5,
            min_segment_size: 3,
            cluster_subsample_pcnt: 100.0,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    for (row, col) in [(5, 5), (20, 30), (39, 0)] {
        assert_eq!(r.segimg[[row, col]], 0);
    }
    assert_eq!(r.segimg.iter().filter(|&&v| v == 0).count(), 3);
    let centres = r.model.unwrap().to_json();
    assert!(
        !centres.contains("inf") && !centres.contains("NaN"),
        "{centres}"
    );
}

#[test]
fn other_pixel_types() {
    let shape = (2, 16, 16);
    let f = |(b, r, c): (usize, usize, usize)| (r / 4 * 3 + c / 8 + b) as i32;
    let p = SegmentParams {
        num_clusters: 6,
        min_segment_size: 4,
        fixed_kmeans_init: true,
        ..Default::default()
    };
    let a = segment(
        &Array3::from_shape_fn(shape, |i| f(i) as u16).view(),
        None,
        &p,
        None,
    )
    .unwrap();
    let b = segment(
        &Array3::from_shape_fn(shape, |i| f(i) as i16 - 100).view(),
        None,
        &p,
        None,
    )
    .unwrap();
    let c = segment(
        &Array3::from_shape_fn(shape, |i| f(i) as u32).view(),
        None,
        &p,
        None,
    )
    .unwrap();
    let d = segment(
        &Array3::from_shape_fn(shape, |i| f(i) - 5).view(),
        None,
        &p,
        None,
    )
    .unwrap();
    let e = segment(
        &Array3::from_shape_fn(shape, |i| f(i) as f32).view(),
        None,
        &p,
        None,
    )
    .unwrap();
    // The same structure in every type gives the same segmentation.
    for other in [&b, &c, &d, &e] {
        assert_eq!(a.segimg, other.segimg);
    }
}
