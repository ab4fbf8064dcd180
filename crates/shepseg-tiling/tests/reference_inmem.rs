//! The in-memory segmentation against pyshepseg's own outputs.
//!
//! Fixtures are copies of `shared/reference` (see `testdata/README.md`): for each case, the
//! input image, the k-means centres pyshepseg fitted, and the segment image it produced with
//! `doShepherdSegmentation`.

use std::collections::HashMap;

use ndarray::Array2;
use serde_json::Value;
use shepseg_core::{
    fit, sample_pixels, KMeansInit, KMeansModel, KMeansParams, MaxSpectralDiff, Pixel,
    SegmentParams,
};
use shepseg_tiling::{BandStack, Raster};

#[path = "../../../testdata/reference_case.rs"]
mod reference_case;
use reference_case::{bands, case, case_dir, read_u32};

fn input(name: &str, c: &Value) -> (BandStack, Option<f64>) {
    let r = Raster::open(case_dir(name).join(c["input"].as_str().unwrap())).expect("open input");
    let bands = bands(c);
    let stack = r.read_stack(&bands, r.full_window()).expect("read input");
    (stack, c["null_value"].as_f64())
}

fn params(c: &Value, m: &Value, compat: bool) -> SegmentParams {
    SegmentParams {
        num_clusters: c["num_clusters"].as_u64().unwrap() as usize,
        min_segment_size: m["min_segment_size"].as_u64().unwrap() as usize,
        four_connected: c["four_connected"].as_bool().unwrap(),
        max_spectral_diff: MaxSpectralDiff::Auto,
        spect_dist_pcntile: c["spect_dist_pcntile"].as_f64().unwrap(),
        cluster_subsample_pcnt: m["cluster_subsample_pcnt"].as_f64().unwrap(),
        fixed_kmeans_init: true,
        pyshepseg_compat: compat,
        ..Default::default()
    }
}

/// Compat mode with pyshepseg's centres: pixel-for-pixel equality, and the same counts.
fn check_compat(name: &str) {
    let c = case(name);
    let (stack, null) = input(name, &c);
    for m in c["in_memory"].as_array().unwrap() {
        let text =
            std::fs::read_to_string(case_dir(name).join(m["centres"].as_str().unwrap())).unwrap();
        let model = KMeansModel::from_json(&text).unwrap();
        let res = stack
            .segment(null, &params(&c, m, true), Some(&model))
            .unwrap();
        let expected = read_u32(case_dir(name).join(m["output"].as_str().unwrap()));
        let differ = res
            .segimg
            .iter()
            .zip(expected.iter())
            .filter(|(a, b)| a != b)
            .count();
        let label = format!("{name} minseg {}", m["min_segment_size"]);
        assert_eq!(differ, 0, "{label}: {differ} pixels differ from pyshepseg");
        assert_eq!(
            res.max_spectral_diff,
            m["max_spectral_diff_used"].as_f64().unwrap(),
            "{label}: maxSpectralDiff"
        );
        assert_eq!(
            res.single_pixels_eliminated as u64,
            m["single_pixels_eliminated"].as_u64().unwrap(),
            "{label}: single pixels eliminated"
        );
        assert_eq!(
            res.small_segments_eliminated as u64,
            m["small_segments_eliminated"].as_u64().unwrap(),
            "{label}: small segments eliminated"
        );
        assert_eq!(
            res.num_segments as u64,
            m["num_segments"].as_u64().unwrap(),
            "{label}: segments"
        );
        eprintln!(
            "{label}: compat mode equals pyshepseg on all {} pixels",
            expected.len()
        );
    }
}

#[test]
fn compat_equals_pyshepseg_rgbn() {
    check_compat("rgbn");
}

#[test]
fn compat_equals_pyshepseg_synth8000() {
    check_compat("synth8000");
}

/// Null pixels of the input (any band equal to the null value).
fn input_nulls(stack: &BandStack, null: Option<f64>) -> Array2<bool> {
    let (_, rows, cols) = stack.dim();
    let mut out = Array2::from_elem((rows, cols), false);
    let Some(nv) = null else { return out };
    macro_rules! fill {
        ($a:expr) => {
            for ((_, r, c), v) in $a.indexed_iter() {
                if (*v as f64) == nv {
                    out[[r, c]] = true;
                }
            }
        };
    }
    match stack {
        BandStack::U8(a) => fill!(a),
        BandStack::U16(a) => fill!(a),
        BandStack::I16(a) => fill!(a),
        BandStack::U32(a) => fill!(a),
        BandStack::I32(a) => fill!(a),
        BandStack::F32(a) => fill!(a),
        BandStack::I8(a) => fill!(a),
        BandStack::U64(a) => fill!(a),
        BandStack::I64(a) => fill!(a),
        BandStack::F64(a) => fill!(a),
    }
    out
}

/// The share of the pixels `theirs` labels whose `theirs` segment lies inside one segment of
/// `ours`: how far `ours` is `theirs` with segments joined (and little else changed).
fn nested_share(ours: &Array2<u32>, theirs: &Array2<u32>) -> f64 {
    let mut inside: HashMap<u32, Option<u32>> = HashMap::new();
    let mut size: HashMap<u32, usize> = HashMap::new();
    for (&a, &b) in ours.iter().zip(theirs.iter()) {
        if b == 0 {
            continue;
        }
        *size.entry(b).or_default() += 1;
        let e = inside.entry(b).or_insert(Some(a));
        if *e != Some(a) {
            *e = None;
        }
    }
    let labelled: usize = size.values().sum();
    let nested: usize = size
        .iter()
        .filter(|(b, _)| inside[b].is_some())
        .map(|(_, n)| n)
        .sum();
    nested as f64 / labelled.max(1) as f64
}

/// Default mode: no valid pixel is null, and pyshepseg's segments lie inside the default
/// mode's almost everywhere: the default keeps whole the areas pyshepseg's clump cap cuts into
/// 10,000-pixel pieces, and its other rules (exact sums, ties to the smallest ID) change few
/// merges.
fn check_default(name: &str, min_nested: f64) {
    let c = case(name);
    let (stack, null) = input(name, &c);
    let nulls = input_nulls(&stack, null);
    for m in c["in_memory"].as_array().unwrap() {
        let text =
            std::fs::read_to_string(case_dir(name).join(m["centres"].as_str().unwrap())).unwrap();
        let model = KMeansModel::from_json(&text).unwrap();
        let res = stack
            .segment(null, &params(&c, m, false), Some(&model))
            .unwrap();
        let expected = read_u32(case_dir(name).join(m["output"].as_str().unwrap()));
        let label = format!("{name} minseg {}", m["min_segment_size"]);
        for (pos, &ours) in res.segimg.indexed_iter() {
            assert_eq!(ours == 0, nulls[pos], "{label}: null mismatch at {pos:?}");
        }
        let nested = nested_share(&res.segimg, &expected);
        eprintln!(
            "{label}: {} segments (pyshepseg {}); pyshepseg's segments inside ours on {:.3}% of its labelled pixels",
            res.num_segments,
            expected.iter().copied().max().unwrap_or(0),
            nested * 100.0
        );
        assert!(nested >= min_nested, "{label}: {nested}");
    }
}

#[test]
fn default_mode_nests_pyshepseg_rgbn() {
    check_default("rgbn", 0.999);
}

#[test]
fn default_mode_nests_pyshepseg_synth8000() {
    check_default("synth8000", 0.999);
}

macro_rules! with_stack {
    ($stack:expr, |$a:ident| $body:expr) => {
        match $stack {
            BandStack::U8($a) => $body,
            BandStack::U16($a) => $body,
            BandStack::I16($a) => $body,
            BandStack::U32($a) => $body,
            BandStack::I32($a) => $body,
            BandStack::F32($a) => $body,
            BandStack::I8($a) => $body,
            BandStack::U64($a) => $body,
            BandStack::I64($a) => $body,
            BandStack::F64($a) => $body,
        }
    };
}

/// Share of non-null pixels lying in segments whose pixel sets are identical in `a` and `b`.
fn identical_segment_share(a: &Array2<u32>, b: &Array2<u32>) -> f64 {
    let mut size_a: HashMap<u32, usize> = HashMap::new();
    let mut size_b: HashMap<u32, usize> = HashMap::new();
    let mut pair: HashMap<u32, Option<u32>> = HashMap::new();
    for (&x, &y) in a.iter().zip(b.iter()) {
        *size_a.entry(x).or_default() += 1;
        *size_b.entry(y).or_default() += 1;
        let e = pair.entry(x).or_insert(Some(y));
        if *e != Some(y) {
            *e = None;
        }
    }
    let mut same = 0usize;
    let mut total = 0usize;
    for (&x, &n) in &size_a {
        if x == 0 {
            continue;
        }
        total += n;
        if let Some(Some(y)) = pair.get(&x) {
            if *y != 0 && size_b[y] == n {
                same += n;
            }
        }
    }
    same as f64 / total.max(1) as f64
}

/// Our own diagonal-initialised fit: the same initial centres and sample as pyshepseg, and a
/// segmentation agreeing on at least 99% of pixels.
fn check_own_fit(name: &str, min_share: f64) {
    let c = case(name);
    let (stack, null) = input(name, &c);
    let bands = stack.dim().0;
    for m in c["in_memory"].as_array().unwrap() {
        let text =
            std::fs::read_to_string(case_dir(name).join(m["centres"].as_str().unwrap())).unwrap();
        let reference: Value = serde_json::from_str(&text).unwrap();
        let p = params(&c, m, true);
        let (n, init, info) = with_stack!(&stack, |a| {
            let nv = null.map(|v| v as _);
            let s = sample_pixels(&a.view(), nv, p.cluster_subsample_pcnt).unwrap();
            let init: Vec<f64> = shepseg_core::diagonal_init(&s, bands, p.num_clusters)
                .iter()
                .map(|v| v.to_f64())
                .collect();
            // The fit itself must run on this sample too.
            let kp = KMeansParams {
                num_clusters: p.num_clusters,
                init: KMeansInit::Diagonal,
                ..Default::default()
            };
            let (_, info) = fit(&s, bands, &kp).unwrap();
            (s.len() / bands, init, info)
        });
        assert_eq!(n as u64, m["kmeans_sample"]["count"].as_u64().unwrap());
        let expected_init: Vec<f64> = reference["init_centres_diagonal"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect();
        assert_eq!(init, expected_init, "{name}: diagonal initial centres");

        let res = stack.segment(null, &p, None).unwrap();
        let expected = read_u32(case_dir(name).join(m["output"].as_str().unwrap()));
        let share = identical_segment_share(&res.segimg, &expected);
        let ours = res.model.unwrap();
        let theirs = KMeansModel::from_json(&text).unwrap();
        let max_centre_diff = (0..ours.num_clusters())
            .flat_map(|i| {
                ours.centre(i)
                    .iter()
                    .zip(theirs.centre(i))
                    .map(|(a, b)| (a - b).abs())
                    .collect::<Vec<_>>()
            })
            .fold(0.0f64, f64::max);
        let ref_inertia = reference["inertia"].as_f64().unwrap();
        eprintln!(
            "{name} minseg {}: own diagonal fit: {:.4}% of pixels in identical segments; largest centre difference {max_centre_diff:.3e}; {} segments (pyshepseg {}); {} iterations (pyshepseg {}); inertia {:.1} (pyshepseg {ref_inertia:.1})",
            m["min_segment_size"],
            share * 100.0,
            res.num_segments,
            m["num_segments"],
            info.iterations,
            reference["n_iter"],
            info.inertia,
        );
        assert!(
            share >= min_share,
            "{name}: only {:.3}% agree",
            share * 100.0
        );
    }
}

#[test]
fn own_fit_agrees_with_pyshepseg_rgbn() {
    check_own_fit("rgbn", 0.99);
}

#[test]
fn own_fit_agrees_with_pyshepseg_synth8000() {
    check_own_fit("synth8000", 0.99);
}

/// rgbn with a nodata border (a staircase, like a scene edge) and scattered null pixels, null 0:
/// the situation in which pyshepseg's single-pixel elimination turns valid pixels null.
fn rgbn_with_nulls() -> ndarray::Array3<u8> {
    let c = case("rgbn");
    let (stack, _) = input("rgbn", &c);
    let BandStack::U8(mut img) = stack else {
        panic!("rgbn is Byte")
    };
    let (_, rows, cols) = img.dim();
    for r in 0..rows {
        for col in 0..cols {
            if col < 20 + r / 8 || (r * 31 + col * 17) % 97 == 0 {
                img.slice_mut(ndarray::s![.., r, col]).fill(0);
            }
        }
    }
    img
}

/// On an image with nulls, compat mode shows pyshepseg's defect (valid pixels made null) and
/// default mode does not; the two differ only in those pixels and the segments that take them.
#[test]
fn default_mode_fixes_the_null_merge_defect() {
    let img = rgbn_with_nulls();
    let text =
        std::fs::read_to_string(case_dir("rgbn").join("rgbn_inmem_minseg50_kmeans.json")).unwrap();
    let model = KMeansModel::from_json(&text).unwrap();
    let input_null = img.map_axis(ndarray::Axis(0), |px| px.iter().any(|&v| v == 0));
    let run = |compat: bool| {
        let p = SegmentParams {
            min_segment_size: 50,
            pyshepseg_compat: compat,
            ..Default::default()
        };
        shepseg_core::segment(&img.view(), Some(0), &p, Some(&model)).unwrap()
    };
    let compat = run(true);
    let fixed = run(false);
    let nulled = |s: &Array2<u32>| {
        s.iter()
            .zip(input_null.iter())
            .filter(|(&v, &n)| v == 0 && !n)
            .count()
    };
    let compat_nulled = nulled(&compat.segimg);
    eprintln!(
        "input nulls {}; compat mode nulls {compat_nulled} valid pixels ({} segments); default mode nulls {} ({} segments)",
        input_null.iter().filter(|&&n| n).count(),
        compat.num_segments,
        nulled(&fixed.segimg),
        fixed.num_segments
    );
    assert!(compat_nulled > 0, "the defect should show in compat mode");
    assert_eq!(nulled(&fixed.segimg), 0, "default mode nulled valid pixels");
    for ((pos, &f), &n) in fixed.segimg.indexed_iter().zip(input_null.iter()) {
        assert_eq!(f == 0, n, "null mismatch at {pos:?}");
    }
    // Beyond the pixels pyshepseg nulled, compat mode's segments lie inside the default's.
    let nested = nested_share(&fixed.segimg, &compat.segimg);
    eprintln!(
        "compat mode's segments inside the default's on {:.3}% of its labelled pixels",
        nested * 100.0
    );
    assert!(nested >= 0.55, "{nested}");
}
