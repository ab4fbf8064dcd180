//! The core's public entry points on arbitrary input: any array up to 64x64x8 of every pixel
//! type, any values (the type's extremes, NaN, infinities), any null, any parameters, any
//! model, any tile frame. Each call returns a result or an error; nothing panics. Results that
//! come back keep the basic contract (the image's shape, IDs 1..N, null exactly where null).

use ndarray::{Array2, Array3};
use proptest::prelude::*;
use shepseg_core::seamless::{analyse_tile, join_tiles, TileAnalysis, TileFrame};
use shepseg_core::{
    clump, diagonal_init, fit, sample_pixels, segment, KMeansInit, KMeansModel, KMeansParams,
    MaxSpectralDiff, Pixel, SegmentParams,
};

/// Values worth trying for a pixel type: its extremes, zero, small integers, and for floats
/// NaN, the infinities, -0 and a subnormal.
trait Interesting: Pixel + std::fmt::Debug + 'static {
    fn interesting() -> Vec<Self>;
}

macro_rules! ints {
    ($($t:ty),*) => {$(
        impl Interesting for $t {
            fn interesting() -> Vec<Self> {
                vec![<$t>::MIN, <$t>::MAX, 0, 1, 2, 3, 7, 100, <$t>::MAX / 2, <$t>::MIN / 2 + 1]
            }
        }
    )*};
}
ints!(u8, i8, u16, i16, u32, i32, u64, i64);

macro_rules! floats {
    ($($t:ident),*) => {$(
        impl Interesting for $t {
            fn interesting() -> Vec<Self> {
                vec![
                    $t::NAN,
                    $t::INFINITY,
                    $t::NEG_INFINITY,
                    $t::MAX,
                    $t::MIN,
                    $t::MIN_POSITIVE,
                    $t::from_bits(1),
                    -0.0,
                    0.0,
                    1.0,
                    2.5,
                    -3.0,
                    1e30,
                ]
            }
        }
    )*};
}
floats!(f32, f64);

/// An image: a few of the type's interesting values, laid out in blobs (runs repeat), and a
/// null that may or may not occur.
fn image<T: Interesting>() -> impl Strategy<Value = (Array3<T>, Option<T>)> {
    let vals = T::interesting();
    let n = vals.len();
    (
        1usize..=8,
        1usize..=64,
        1usize..=64,
        1usize..=n,
        any::<u64>(),
        0..=n,
    )
        .prop_map(move |(bands, rows, cols, levels, seed, null)| {
            // A small xorshift keeps generation fast for 32k-element images.
            let mut s = seed | 1;
            let mut next = || {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s
            };
            let mut v = Vec::with_capacity(bands * rows * cols);
            let mut cur = vals[0];
            for _ in 0..bands * rows * cols {
                if next() % 4 == 0 {
                    cur = vals[(next() % levels as u64) as usize];
                }
                v.push(cur);
            }
            let img = Array3::from_shape_vec((bands, rows, cols), v).expect("shape");
            (img, vals.get(null).copied())
        })
}

/// Parameters: mostly ones a job could run with (so that the algorithm itself is exercised),
/// sometimes anything at all.
fn params() -> impl Strategy<Value = SegmentParams> {
    let valid = (
        1usize..70,
        prop_oneof![Just(1.0), Just(100.0), Just(30.0)],
        0usize..60,
        prop_oneof![
            Just(MaxSpectralDiff::Auto),
            Just(MaxSpectralDiff::Unlimited),
            (0.0f64..1e6).prop_map(MaxSpectralDiff::Value),
            Just(MaxSpectralDiff::Value(0.0)),
        ],
        0.0f64..=100.0,
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(
            |(k, sub, min, msd, pct, four, fixed, seed, compat)| SegmentParams {
                num_clusters: k,
                cluster_subsample_pcnt: sub,
                min_segment_size: min,
                max_spectral_diff: msd,
                spect_dist_pcntile: pct,
                four_connected: four,
                fixed_kmeans_init: fixed,
                seed,
                pyshepseg_compat: compat,
            },
        );
    prop_oneof![3 => valid, 1 => wild_params()]
}

fn wild_params() -> impl Strategy<Value = SegmentParams> {
    let pcnt = prop_oneof![
        Just(-1.0),
        Just(0.0),
        Just(1e-9),
        Just(1.0),
        Just(50.0),
        Just(100.0),
        Just(150.0),
        Just(f64::NAN),
    ];
    let msd = prop_oneof![
        Just(MaxSpectralDiff::Auto),
        Just(MaxSpectralDiff::Unlimited),
        any::<f64>().prop_map(MaxSpectralDiff::Value),
        Just(MaxSpectralDiff::Value(-1.0)),
        Just(MaxSpectralDiff::Value(f64::INFINITY)),
        Just(MaxSpectralDiff::Value(0.0)),
    ];
    let pctile = prop_oneof![
        Just(-5.0),
        Just(0.0),
        Just(50.0),
        Just(100.0),
        Just(101.0),
        Just(f64::NAN)
    ];
    (
        0usize..80,
        pcnt,
        0usize..200,
        msd,
        pctile,
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(
            |(k, sub, min, msd, pct, four, fixed, seed, compat)| SegmentParams {
                num_clusters: k,
                cluster_subsample_pcnt: sub,
                min_segment_size: min,
                max_spectral_diff: msd,
                spect_dist_pcntile: pct,
                four_connected: four,
                fixed_kmeans_init: fixed,
                seed,
                pyshepseg_compat: compat,
            },
        )
}

/// The contract of a result that came back. pyshepseg's mode keeps pyshepseg's defects (valid
/// single pixels absorbed by the null segment, a lone null pixel joining a segment): only the
/// default mode promises null exactly where the image is null.
fn check<T: Pixel>(img: &Array3<T>, null: Option<T>, seg: &Array2<u32>, n: u32, compat: bool) {
    let (_, rows, cols) = img.dim();
    assert_eq!(seg.dim(), (rows, cols));
    for ((r, c), &s) in seg.indexed_iter() {
        assert!(s <= n, "ID {s} above {n}");
        let is_null = img
            .slice(ndarray::s![.., r, c])
            .iter()
            .any(|v| v.is_null(null));
        if !compat {
            assert_eq!(s == 0, is_null, "pixel ({r}, {c}) = {s}");
        }
    }
}

fn segment_never_panics<T: Interesting>(
    (img, null): (Array3<T>, Option<T>),
    p: SegmentParams,
    centres: Vec<Vec<f64>>,
) {
    let r = segment(&img.view(), null, &p, None);
    if let Ok(res) = r {
        check(
            &img,
            null,
            &res.segimg,
            res.num_segments,
            p.pyshepseg_compat,
        );
    }
    // Any model, of any width, finite or not.
    if let Ok(model) = KMeansModel::new(centres) {
        if let Ok(res) = segment(&img.view(), null, &p, Some(&model)) {
            check(
                &img,
                null,
                &res.segimg,
                res.num_segments,
                p.pyshepseg_compat,
            );
        }
    }
}

fn fit_never_panics<T: Interesting>(
    (img, null): (Array3<T>, Option<T>),
    k: usize,
    max_iter: usize,
    tol: f64,
    seed: u64,
    diag: bool,
    pcnt: f64,
) {
    let bands = img.dim().0;
    if let Ok(sample) = sample_pixels(&img.view(), null, pcnt) {
        let _ = diagonal_init(&sample, bands, k);
        let params = KMeansParams {
            num_clusters: k,
            init: if diag {
                KMeansInit::Diagonal
            } else {
                KMeansInit::KMeansPlusPlus { runs: 2, seed }
            },
            max_iter,
            tol,
            ..KMeansParams::default()
        };
        if let Ok((model, _)) = fit(&sample, bands, &params) {
            assert_eq!(model.num_bands(), bands);
        }
        // A band count that does not divide the sample.
        let _ = fit(&sample, bands + 1, &params);
        let _ = fit(&sample, 0, &params);
    }
}

/// The seamless path on arbitrary frames: a whole-image frame must agree with `segment`'s
/// contract; frames that do not fit their window are errors, never panics.
fn seamless_never_panics<T: Interesting>(
    (img, null): (Array3<T>, Option<T>),
    p: SegmentParams,
    frame: (u64, u64, u64, u64, u64, u64),
) {
    let (bands, rows, cols) = img.dim();
    let model = KMeansModel::new(vec![vec![0.0; bands], vec![1.0; bands], vec![1e6; bands]])
        .expect("model");
    let (rr, rc, r0, c0, h, w) = frame;
    let odd = TileFrame {
        raster_rows: rr,
        raster_cols: rc,
        row0: r0,
        col0: c0,
        rows: h,
        cols: w,
    };
    let _ = analyse_tile(&img.view(), odd, null, &p, &model);
    let whole = TileFrame {
        raster_rows: rows as u64,
        raster_cols: cols as u64,
        row0: 0,
        col0: 0,
        rows: rows as u64,
        cols: cols as u64,
    };
    if let Ok(TileAnalysis { part, .. }) = analyse_tile(&img.view(), whole, null, &p, &model) {
        let _ = join_tiles(vec![part], p.min_segment_size, 1.0, p.four_connected, 2);
    }
}

fn centres() -> impl Strategy<Value = Vec<Vec<f64>>> {
    (0usize..5, 0usize..10).prop_flat_map(|(k, b)| {
        proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![any::<f64>(), Just(0.0), Just(1.0), Just(f64::NAN)],
                b,
            ),
            k,
        )
    })
}

fn frame() -> impl Strategy<Value = (u64, u64, u64, u64, u64, u64)> {
    let v = || {
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(3),
            Just(64),
            Just(u64::MAX),
            any::<u64>()
        ]
    };
    (v(), v(), v(), v(), v(), v())
}

macro_rules! fuzz_type {
    ($name:ident, $t:ty) => {
        mod $name {
            use super::*;
            proptest! {
                #![proptest_config(ProptestConfig::with_cases(256))]
                #[test]
                fn segment(input in image::<$t>(), p in params(), c in centres()) {
                    segment_never_panics(input, p, c);
                }
                #[test]
                fn kmeans(input in image::<$t>(), k in 0usize..70, it in 0usize..5, tol in any::<f64>(),
                          seed in any::<u64>(), diag in any::<bool>(),
                          pcnt in prop_oneof![Just(-1.0), Just(0.0), Just(1e-6), Just(37.0), Just(100.0), Just(f64::NAN), Just(1e300)]) {
                    fit_never_panics(input, k, it, tol, seed, diag, pcnt);
                }
                #[test]
                fn seamless(input in image::<$t>(), p in params(), f in frame()) {
                    seamless_never_panics(input, p, f);
                }
            }
        }
    };
}

fuzz_type!(byte, u8);
fuzz_type!(uint16, u16);
fuzz_type!(int16, i16);
fuzz_type!(uint32, u32);
fuzz_type!(int32, i32);
fuzz_type!(float32, f32);
fuzz_type!(int8, i8);
fuzz_type!(uint64, u64);
fuzz_type!(int64, i64);
fuzz_type!(float64, f64);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn clump_any_labels(rows in 1usize..=64, cols in 1usize..=64, levels in 1u32..5, seed in any::<u64>(), four in any::<bool>()) {
        let mut s = seed | 1;
        let v: Vec<u32> = (0..rows * cols)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                match s % 7 {
                    0 => u32::MAX,
                    _ => (s % u64::from(levels)) as u32,
                }
            })
            .collect();
        let img = Array2::from_shape_vec((rows, cols), v).expect("shape");
        let (seg, n) = clump(&img.view(), four);
        prop_assert_eq!(seg.dim(), (rows, cols));
        prop_assert!(seg.iter().all(|&x| x <= n));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Models from any text; a model's nearest centre for any point and guess.
    #[test]
    fn models_and_nearest(text in ".{0,200}", c in centres(), x in proptest::collection::vec(any::<f64>(), 0..10), guess in any::<usize>()) {
        let _ = KMeansModel::from_json(&text);
        let _ = KMeansModel::from_json(&format!("{{\"cluster_centers\": {text}}}"));
        if let Ok(m) = KMeansModel::new(c) {
            if let Some(j) = m.predictor().nearest(&x, guess) {
                prop_assert!(j < m.num_clusters());
            }
        }
    }

    /// Relabelling with any map; indexing any segmentation's pixels.
    #[test]
    fn relabel_and_locations(rows in 1usize..=64, cols in 1usize..=64, seed in any::<u64>(), map in proptest::collection::vec(any::<u32>(), 0..50)) {
        let mut s = seed | 1;
        let n = (rows * cols) as u64;
        let labels: Vec<u32> = (0..rows * cols)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % (2 * n + 1)) as u32
            })
            .collect();
        let mut relabelled = labels.clone();
        shepseg_core::seamless::relabel(&mut relabelled, &map);
        let img = Array2::from_shape_vec((rows, cols), labels).expect("shape");
        let loc = shepseg_core::SegmentLocations::new(&img.view());
        let total: usize = (1..=loc.num_segments()).map(|id| loc.size(id)).sum();
        prop_assert_eq!(total, img.iter().filter(|&&v| v != 0).count());
    }
}

/// Found by the fuzz tests: a model centre far beyond any spectrum (-6e304) made every
/// distance infinite and left valid pixels null. Such models are refused.
#[test]
fn absurd_model_centres_are_refused() {
    assert!(KMeansModel::new(vec![vec![0.0, -6.1723726011721045e304]]).is_err());
    assert!(KMeansModel::new(vec![vec![0.0, 1e100]]).is_ok());
}
