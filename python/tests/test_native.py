"""The native API, ``import shepseg``, on real GeoTIFFs through GDAL."""

import os
import subprocess
import sys

import numpy
import pytest

import shepseg


def test_version_and_error_type():
    assert shepseg.__version__
    assert issubclass(shepseg.ShepsegError, RuntimeError)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "uint32", "int32",
                                   "uint64", "int64", "float32", "float64"])
def test_every_pixel_type(dtype):
    rng = numpy.random.default_rng(7)
    centres = rng.integers(0, 100, size=(6, 3))
    labels = rng.integers(0, 6, size=(8, 8)).repeat(8, axis=0).repeat(9, axis=1)
    img = centres[labels].transpose(2, 0, 1) + rng.integers(0, 3, size=(3, 64, 72))
    img = img.astype(dtype)
    null = None
    if dtype.startswith("float"):
        img[0, 0, :5] = numpy.nan
        img[1, 1, :3] = numpy.inf
    else:
        null = 0
        img[:, 2, :4] = 0
    r = shepseg.segment(img, null_value=null, num_clusters=6, min_segment_size=10)
    assert r.segimg.dtype == numpy.uint32 and r.segimg.shape == (64, 72)
    valid = numpy.isfinite(img.astype(numpy.float64)).all(axis=0)
    if null is not None:
        valid &= (img != null).any(axis=0) & ~(img == null).any(axis=0)
    assert (r.segimg[~valid] == 0).all()
    assert (r.segimg[valid] > 0).all()
    assert set(numpy.unique(r.segimg[valid])) == set(range(1, r.num_segments + 1))
    assert r.centres.shape == (6, 3)


def test_model_from_an_object_with_cluster_centers(rgbn):
    img = shepseg.read_raster(rgbn.input)
    centres = rgbn.centres("rgbn_inmem_minseg50_kmeans.json")

    class KMeansLike:
        cluster_centers_ = centres

    a = shepseg.segment(img, model=KMeansLike())
    b = shepseg.segment(img, model=centres)
    assert (a.segimg == b.segimg).all()
    assert numpy.array_equal(a.centres, centres)


def test_tiled_default_equals_whole_image_for_any_tile_size(rgbn, tmp_path):
    img = shepseg.read_raster(rgbn.input)
    first = shepseg.tiled_segment(rgbn.input, tmp_path / "a.tif", tile_size=100, workers=2)
    centres = numpy.asarray(first["kmeans"]["cluster_centers"])
    # A report's model goes straight back in.
    whole = shepseg.segment(img, model=first["kmeans"])
    assert numpy.array_equal(whole.centres, centres)
    for tile in (100, 128, 333, 1024):
        out = tmp_path / f"t{tile}.tif"
        rep = shepseg.tiled_segment(rgbn.input, out, tile_size=tile, model=centres)
        seg = shepseg.read_raster(out)[0]
        assert (seg == whole.segimg).all(), tile
        assert rep["num_segments"] == whole.num_segments


def test_resume_without_a_job_starts_afresh_and_compat_cannot_resume(rgbn, tmp_path):
    out, wd = tmp_path / "r.tif", tmp_path / "wd"
    rep = shepseg.tiled_segment(rgbn.input, out, tile_size=128, work_dir=wd, resume=True)
    assert rep["tiles_resumed"] == 0 and rep["num_tiles"] > 1
    assert not wd.exists(), "the work directory goes once the output is complete"
    with pytest.raises(shepseg.ShepsegError, match="resuming"):
        shepseg.tiled_segment(rgbn.input, tmp_path / "c.tif", pyshepseg_compat=True, resume=True)
    assert not (tmp_path / "c.tif").exists()


def test_every_executor_gives_the_same_output(rgbn, tmp_path):
    outs = {}
    for executor, workers in (("sequential", None), ("threads", 3), ("processes", 2)):
        out = tmp_path / f"{executor}.tif"
        rep = shepseg.tiled_segment(rgbn.input, out, tile_size=128, executor=executor,
                                    workers=workers, fixed_kmeans_init=True,
                                    barrier_timeout=60)
        assert rep["executor"] == executor
        outs[executor] = shepseg.read_raster(out)[0]
        if executor == "processes":
            # Real worker processes (python -m shepseg worker) over TCP did the tiles.
            assert rep["workers"]["joined"] >= 1
    assert (outs["sequential"] == outs["threads"]).all()
    assert (outs["sequential"] == outs["processes"]).all()


def test_a_vrt_output_is_a_mosaic_written_by_python_workers(rgbn, tmp_path):
    single = tmp_path / "single.tif"
    shepseg.tiled_segment(rgbn.input, single, tile_size=128, fixed_kmeans_init=True)
    mosaic = tmp_path / "mosaic.vrt"
    rep = shepseg.tiled_segment(rgbn.input, mosaic, tile_size=128, executor="processes",
                                workers=2, fixed_kmeans_init=True, barrier_timeout=60)
    assert (shepseg.read_raster(mosaic)[0] == shepseg.read_raster(single)[0]).all()
    tiles = sorted(p.name for p in (tmp_path / "mosaic.tiles").iterdir())
    assert len(tiles) > 4 and all(t.startswith("x") and t.endswith(".tif") for t in tiles)
    # The workers (python -m shepseg worker) read the sample, segmented and wrote the tiles:
    # the coordinator received tables, not pixels.
    assert rep["workers"]["joined"] >= 3


def test_statistics_subset_polygonize_and_table(rgbn, tmp_path):
    seg = tmp_path / "seg.tif"
    rep = shepseg.tiled_segment(rgbn.input, seg, tile_size=128, stats_bands=[1, 2],
                                stats=["mean", "count"])
    assert rep["stats_columns"] == ["Band_1_mean", "Band_1_count", "Band_2_mean", "Band_2_count"]
    calls = []

    def user(xs, ys, values, out):
        calls.append(len(xs))
        out[0] = len(xs)
        out[1] = values.sum()

    cols = shepseg.stats(seg, rgbn.input, bands=[4], stats=["max"], column_names=["nir_max"],
                         user_columns=[("npix", "int"), ("sum", "real")], user_func=user)
    assert cols == ["nir_max", "npix", "sum"]
    t = shepseg.read_table(seg)
    n = rep["num_segments"]
    assert len(calls) == n
    assert (t["npix"][1:] == t["Histogram"][1:]).all()
    assert (t["Band_1_count"][1:] == t["Histogram"][1:]).all()
    img = shepseg.read_raster(rgbn.input)
    ids = shepseg.read_raster(seg)[0]
    sums = numpy.bincount(ids.ravel(), weights=img[3].ravel().astype(float), minlength=n + 1)
    assert numpy.array_equal(t["sum"][1:], sums[1:])
    maxes = numpy.zeros(n + 1, dtype=numpy.int64)
    numpy.maximum.at(maxes, ids.ravel(), img[3].ravel())
    assert numpy.array_equal(t["nir_max"][1:], maxes[1:])

    part = tmp_path / "part.tif"
    r = shepseg.subset(seg, part, srcwin=(10, 20, 100, 50), orig_id_column="orig")
    sub = shepseg.read_raster(part)[0]
    assert r["window"] == (10, 20, 100, 50) and sub.shape == (50, 100)
    orig = shepseg.read_table(part, ["orig"])["orig"]
    assert (orig[sub] == ids[20:70, 10:110]).all()

    gpkg = tmp_path / "seg.gpkg"
    v = shepseg.polygonize(seg, gpkg, columns=["Band_1_mean"])
    assert v["features"] == n
    # Simplified by one and a half pixels: the same features, far fewer vertices.
    simple = shepseg.polygonize(seg, tmp_path / "simple.gpkg", simplify=7.5)
    assert simple["features"] == n and simple["vertices"] * 2 < v["vertices"]


def test_worker_entry_point_refuses_a_bad_secret(tmp_path):
    env = dict(os.environ, SHEPSEG_WORKER_SECRET="zz")
    r = subprocess.run([sys.executable, "-m", "shepseg", "worker", "--connect", "127.0.0.1:9",
                        "--connect-timeout", "0"], capture_output=True, text=True, env=env,
                       cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith("shepseg worker: ") and "SHEPSEG_WORKER_SECRET" in r.stderr
