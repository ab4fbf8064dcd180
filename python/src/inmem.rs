//! `segment`: pyshepseg's `doShepherdSegmentation` on a numpy array, any pixel type the core
//! takes.

use ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::conversion::FromPyObjectOwned;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use shepseg_core::{segment as core_segment, KMeansModel, MaxSpectralDiff, Pixel, SegmentParams};

use crate::error::{bad, raise};

/// The parameters, from the Python keywords.
#[allow(clippy::too_many_arguments)]
pub fn params(
    num_clusters: usize,
    cluster_subsample_pcnt: f64,
    min_segment_size: usize,
    max_spectral_diff: &Bound<'_, PyAny>,
    spect_dist_pcntile: f64,
    four_connected: bool,
    fixed_kmeans_init: bool,
    seed: u64,
    pyshepseg_compat: bool,
) -> PyResult<SegmentParams> {
    let msd = if let Ok(s) = max_spectral_diff.extract::<String>() {
        s.parse::<MaxSpectralDiff>()
            .map_err(|e| bad(format!("max_spectral_diff: {e}")))?
    } else if let Ok(v) = max_spectral_diff.extract::<f64>() {
        v.to_string()
            .parse::<MaxSpectralDiff>()
            .map_err(|e| bad(format!("max_spectral_diff: {e}")))?
    } else {
        return Err(bad(
            "max_spectral_diff must be 'auto', 'none' or a number".to_string()
        ));
    };
    let p = SegmentParams {
        num_clusters,
        cluster_subsample_pcnt,
        min_segment_size,
        max_spectral_diff: msd,
        spect_dist_pcntile,
        four_connected,
        fixed_kmeans_init,
        seed,
        pyshepseg_compat,
    };
    p.validate().map_err(|e| raise("", &e))?;
    Ok(p)
}

/// A model from an `(clusters, bands)` array of centres.
pub fn model(centres: Option<&Bound<'_, PyAny>>) -> PyResult<Option<KMeansModel>> {
    let Some(c) = centres else {
        return Ok(None);
    };
    let arr = c
        .extract::<numpy::PyReadonlyArray2<f64>>()
        .map_err(|_| bad("centres must be a 2-d float64 array (clusters, bands)"))?;
    let rows: Vec<Vec<f64>> = arr
        .as_array()
        .rows()
        .into_iter()
        .map(|r| r.to_vec())
        .collect();
    KMeansModel::new(rows)
        .map(Some)
        .map_err(|e| raise("centres", &e))
}

/// The model's centres as a `(clusters, bands)` array.
pub fn centres_array<'py>(py: Python<'py>, m: &KMeansModel) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (k, b) = (m.num_clusters(), m.num_bands());
    let flat: Vec<f64> = (0..k).flat_map(|i| m.centre(i).to_vec()).collect();
    let arr = Array2::from_shape_vec((k, b), flat).map_err(|e| bad(e.to_string()))?;
    Ok(arr.into_pyarray(py))
}

/// What the segmentation produced, without the GIL.
struct Outcome {
    segimg: Array2<u32>,
    model: Option<KMeansModel>,
    max_spectral_diff: f64,
    single: usize,
    small: usize,
    num_segments: u32,
    timings: [(&'static str, f64); 5],
}

/// Segments an owned copy of the image on a thread of its own.
fn run_typed<'py, T>(
    py: Python<'py>,
    arr: PyReadonlyArray3<'py, T>,
    null: Option<&Bound<'py, PyAny>>,
    params: SegmentParams,
    model: Option<KMeansModel>,
) -> PyResult<Outcome>
where
    T: Pixel + numpy::Element + Send + Sync + 'static + FromPyObjectOwned<'py>,
{
    let null: Option<T> = match null {
        Some(v) if !v.is_none() => Some(v.extract::<T>().map_err(|_| {
            bad(format!(
                "null_value {} is not a value of the image's dtype",
                v.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        })?),
        _ => None,
    };
    // The array's data is used where it is (no copy) when it is C-contiguous (the core copies
    // any other layout), on this thread without the GIL. The core cannot be stopped half-way,
    // so a Ctrl-C meanwhile is raised by Python as soon as the call returns.
    let img = arr.as_array();
    let r = py
        .detach(move || core_segment(&img, null, &params, model.as_ref()))
        .map_err(|e| raise("", &e))?;
    let t = r.timings;
    Ok(Outcome {
        segimg: r.segimg,
        model: r.model,
        max_spectral_diff: r.max_spectral_diff,
        single: r.single_pixels_eliminated,
        small: r.small_segments_eliminated,
        num_segments: r.num_segments,
        timings: [
            ("fit", t.fit.as_secs_f64()),
            ("predict", t.predict.as_secs_f64()),
            ("clump", t.clump.as_secs_f64()),
            ("single_pixel", t.single_pixel.as_secs_f64()),
            ("small_segment", t.small_segment.as_secs_f64()),
        ],
    })
}

/// Segments a `(bands, rows, cols)` array; returns a dict the Python layer turns into a result.
#[pyfunction]
#[pyo3(signature = (img, null_value, num_clusters, cluster_subsample_pcnt, min_segment_size,
    max_spectral_diff, spect_dist_pcntile, four_connected, fixed_kmeans_init, seed,
    pyshepseg_compat, centres))]
#[allow(clippy::too_many_arguments)]
pub fn segment<'py>(
    py: Python<'py>,
    img: &Bound<'py, PyAny>,
    null_value: Option<&Bound<'py, PyAny>>,
    num_clusters: usize,
    cluster_subsample_pcnt: f64,
    min_segment_size: usize,
    max_spectral_diff: &Bound<'py, PyAny>,
    spect_dist_pcntile: f64,
    four_connected: bool,
    fixed_kmeans_init: bool,
    seed: u64,
    pyshepseg_compat: bool,
    centres: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let params = params(
        num_clusters,
        cluster_subsample_pcnt,
        min_segment_size,
        max_spectral_diff,
        spect_dist_pcntile,
        four_connected,
        fixed_kmeans_init,
        seed,
        pyshepseg_compat,
    )?;
    let model = model(centres)?;
    let untyped = img
        .cast::<numpy::PyUntypedArray>()
        .map_err(|_| bad("img must be a numpy array of shape (bands, rows, cols)"))?;
    if untyped.ndim() != 3 {
        return Err(bad(format!(
            "img must be a 3-d array (bands, rows, cols), got shape {:?}",
            untyped.shape()
        )));
    }
    macro_rules! try_type {
        ($($t:ty),*) => {
            $(
                if let Ok(a) = img.extract::<PyReadonlyArray3<'py, $t>>() {
                    return finish(py, run_typed::<$t>(py, a, null_value, params, model)?);
                }
            )*
        };
    }
    try_type!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);
    Err(bad(format!(
        "img has dtype {}; shepseg segments uint8, int8, uint16, int16, uint32, int32, uint64, \
         int64, float32 and float64",
        untyped.dtype()
    )))
}

/// The outcome as a dict.
fn finish<'py>(py: Python<'py>, o: Outcome) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("segimg", o.segimg.into_pyarray(py))?;
    match &o.model {
        Some(m) => d.set_item("centres", centres_array(py, m)?)?,
        None => d.set_item("centres", py.None())?,
    }
    d.set_item("max_spectral_diff", o.max_spectral_diff)?;
    d.set_item("single_pixels_eliminated", o.single)?;
    d.set_item("small_segments_eliminated", o.small)?;
    d.set_item("num_segments", o.num_segments)?;
    let t = PyDict::new(py);
    for (k, v) in o.timings {
        t.set_item(k, v)?;
    }
    d.set_item("timings", t)?;
    Ok(d)
}
