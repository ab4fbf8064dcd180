"""The pyshepseg-compatible layer, ``shepseg.compat``, against pyshepseg's own outputs."""

import csv
import os
import subprocess
import sys
import textwrap
import warnings

import numpy
import pytest

import shepseg
from shepseg.compat import shepseg as cshepseg
from shepseg.compat import subset as csubset
from shepseg.compat import tiling, tilingstats


@pytest.mark.parametrize("index", [0, 1])
def test_in_memory_compat_equals_pyshepseg(rgbn, index):
    run = rgbn.meta["in_memory"][index]
    img = shepseg.read_raster(rgbn.input)
    res = cshepseg.doShepherdSegmentation(img, numClusters=60, clusterSubsamplePcnt=1,
                                          minSegmentSize=run["min_segment_size"],
                                          fixedKMeansInit=True, pyshepseg_compat=True)
    expected = shepseg.read_raster(rgbn.dir / run["output"])[0]
    assert res.segimg.dtype == cshepseg.SegIdType
    assert (res.segimg == expected).all()
    assert res.maxSpectralDiff == run["max_spectral_diff_used"]
    assert res.singlePixelsEliminated == run["single_pixels_eliminated"]
    assert res.smallSegmentsEliminated == run["small_segments_eliminated"]
    assert numpy.allclose(res.kmeans.cluster_centers_, rgbn.centres(run["centres"]))


def test_in_memory_compat_equals_pyshepseg_synth8000(synth8000):
    run = synth8000.meta["in_memory"][0]
    img = shepseg.read_raster(synth8000.input)
    centres = synth8000.centres(run["centres"])

    class KMeans:
        cluster_centers_ = centres

    res = cshepseg.doShepherdSegmentation(img, minSegmentSize=run["min_segment_size"],
                                          imgNullVal=synth8000.meta["null_value"],
                                          kmeansObj=KMeans(), pyshepseg_compat=True)
    del img
    expected = shepseg.read_raster(synth8000.dir / run["output"])[0]
    assert (res.segimg == expected).all()
    assert res.maxSpectralDiff == run["max_spectral_diff_used"]


@pytest.mark.parametrize("name", ["rgbn", "synth8000"])
def test_tiled_compat_equals_pyshepseg(request, name, tmp_path):
    case = request.getfixturevalue(name)
    t = case.meta["tiled"]
    out = tmp_path / "seg.tif"
    cfg = tiling.SegmentationConcurrencyConfig(tiling.CONC_THREADS, numWorkers=2)
    res = tiling.doTiledShepherdSegmentation(
        case.input, str(out), tileSize=t["tile_size"], overlapSize=t["overlap_size"],
        minSegmentSize=t["min_segment_size"], numClusters=60, fixedKMeansInit=True,
        imgNullVal=case.meta["null_value"], outputDriver="GTiff", concurrencyCfg=cfg,
        kmeansObj=tiling.FittedKMeans(case.centres(t["centres"])) if name == "synth8000" else None,
        pyshepseg_compat=True)
    expected = shepseg.read_raster(case.dir / t["output"])[0]
    got = shepseg.read_raster(out)[0]
    assert (got == expected).all()
    assert res.maxSegId == t["num_segments"]
    # The tiles compute it in float32; pyshepseg's tiled report gives the float64 value.
    assert numpy.float32(res.maxSpectralDiff) == numpy.float32(t["max_spectral_diff_used"])
    cols = {k.split(",")[0] for k in t["tile_grid"]}
    rows = {k.split(",")[1] for k in t["tile_grid"]}
    assert (res.numTileCols, res.numTileRows) == (len(cols), len(rows))
    assert res.hasEmptySegments is False


def _reference_table(case):
    with open(case.dir / case.meta["stats"]["table"]) as f:
        rows = list(csv.DictReader(f))
    return {k: numpy.array([float(r[k]) for r in rows]) for k in rows[0]}


@pytest.mark.parametrize("name,compat", [("rgbn", False), ("rgbn", True), ("synth8000", False)])
def test_statistics_equal_pyshepseg(request, tmp_path, name, compat):
    rgbn = request.getfixturevalue(name)
    seg = rgbn.copy_of(rgbn.meta["stats"]["segmentation"], tmp_path)
    for b in rgbn.meta["bands"]:
        sel = [(f"b{b}_mean", "mean"), (f"b{b}_stddev", "stddev"), (f"b{b}_min", "min"),
               (f"b{b}_max", "max"), (f"b{b}_median", "median"), (f"b{b}_p25", "percentile", 25)]
        tilingstats.calcPerSegmentStatsTiled(rgbn.input, b, seg, sel, missingStatsValue=-9999,
                                             pyshepseg_compat=compat)
    got = shepseg.read_table(seg)
    ref = _reference_table(rgbn)
    for col, values in ref.items():
        if col == "segid":
            continue
        # Means and deviations are float32 values (pyshepseg's arithmetic); a GTiff's table
        # keeps them as text in its .aux.xml, so compare them as float32.
        assert numpy.array_equal(got[col][1:].astype(numpy.float32),
                                 values[1:].astype(numpy.float32)), col


def test_statistics_of_a_band_list_in_one_call(rgbn, tmp_path):
    seg = rgbn.copy_of(rgbn.meta["stats"]["segmentation"], tmp_path)
    r = tilingstats.calcPerSegmentStatsTiled(rgbn.input, [1, 2], seg,
                                             [("b{band}_mean", "mean"), ("max", "max")])
    assert r.columns == ["b1_mean", "max_b1", "b2_mean", "max_b2"]


def test_spatial_statistics_with_a_python_function(rgbn, tmp_path):
    seg = rgbn.copy_of(rgbn.meta["stats"]["segmentation"], tmp_path)

    def userFunc(pts, imgNullVal, intArr, floatArr, userParam):
        intArr[0] = len(pts)
        floatArr[0] = sum(p.x for p in pts) / len(pts) + userParam
        intArr[1] = tilingstats.convertPtsInto2DArray(pts, 0).shape[1]

    tilingstats.calcPerSegmentSpatialStatsTiled(
        rgbn.input, 1, seg, [("n", tilingstats.GFT_Integer), ("meanx", tilingstats.GFT_Real),
                             ("width", tilingstats.GFT_Integer)], userFunc, userParam=0.5)
    t = shepseg.read_table(seg)
    ids = shepseg.read_raster(seg)[0]
    n = numpy.bincount(ids.ravel())
    assert numpy.array_equal(t["n"][1:len(n)], n[1:])
    xs = numpy.bincount(ids.ravel(), weights=numpy.indices(ids.shape)[1].ravel())
    assert numpy.allclose(t["meanx"][1:len(n)][n[1:] > 0], (xs[1:] / numpy.maximum(n[1:], 1) + 0.5)[n[1:] > 0])
    assert (t["width"][1:len(n)][n[1:] > 0] >= 1).all()


def test_default_mode_warns_once_and_ignores_the_overlap(rgbn, tmp_path):
    import shepseg.compat as compat
    compat._warned.clear()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        a = tiling.doTiledShepherdSegmentation(rgbn.input, str(tmp_path / "a.tif"),
                                               tileSize=128, overlapSize=32,
                                               outputDriver="GTiff", fixedKMeansInit=True)
        b = tiling.doTiledShepherdSegmentation(rgbn.input, str(tmp_path / "b.tif"),
                                               tileSize=256, overlapSize=64,
                                               outputDriver="GTiff", fixedKMeansInit=True,
                                               tempfilesDriver="GTiff")
    texts = [str(x.message) for x in w]
    assert sum("default mode" in t for t in texts) == 1
    assert sum("tempfilesDriver is ignored" in t for t in texts) == 1
    assert a.maxSegId == b.maxSegId
    assert (shepseg.read_raster(tmp_path / "a.tif") == shepseg.read_raster(tmp_path / "b.tif")).all()


def test_kea_falls_back_to_hfa(rgbn, tmp_path):
    if shepseg._shepseg.gdal_driver_available("KEA"):
        pytest.skip("this GDAL has KEA")
    out = tmp_path / "seg.kea"
    with pytest.warns(UserWarning, match="KEA"):
        import shepseg.compat as compat
        compat._warned.discard("kea")
        tiling.doTiledShepherdSegmentation(rgbn.input, str(out), fixedKMeansInit=True)
    assert shepseg.raster_info(out)["types"] == ["UInt32"]


def test_subset_image(rgbn, tmp_path):
    seg = rgbn.copy_of(rgbn.meta["tiled"]["output"], tmp_path)
    out = tmp_path / "sub.tif"
    csubset.subsetImage(seg, str(out), 20, 30, 100, 80, "GTiff", origSegIdColName="orig")
    sub = shepseg.read_raster(out)[0]
    ids = shepseg.read_raster(seg)[0]
    orig = shepseg.read_table(out, ["orig"])["orig"]
    assert (orig[sub] == ids[30:110, 20:120]).all()
    with pytest.raises(shepseg.ShepsegError, match="not within"):
        csubset.subsetImage(seg, str(out), 500, 0, 100, 80, "GTiff")


SCRIPT = '''
import sys
from shepseg.compat import tiling, tilingstats

infile, outfile = sys.argv[1], sys.argv[2]
concurrencyCfg = tiling.SegmentationConcurrencyConfig(
    concurrencyType=tiling.CONC_THREADS, numWorkers=2)
tiledSegResult = tiling.doTiledShepherdSegmentation(
    infile, outfile, tileSize=256, overlapSize=64, minSegmentSize=50, numClusters=60,
    fixedKMeansInit=True, concurrencyCfg=concurrencyCfg)
for band in range(1, 5):
    statsSelection = [("Band%d_Mean" % band, "mean"), ("Band%d_StdDev" % band, "stddev"),
                      ("Band%d_LQ" % band, "percentile", 25)]
    tilingstats.calcPerSegmentStatsTiled(infile, band, outfile, statsSelection)
print(tiledSegResult.maxSegId, tiledSegResult.numTileCols, tiledSegResult.numTileRows)
'''


def test_a_pyshepseg_script_runs_with_its_imports_changed(rgbn, tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(SCRIPT))
    out = tmp_path / "segs.kea"
    r = subprocess.run([sys.executable, str(script), rgbn.input, str(out)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    n = int(r.stdout.split()[0])
    t = shepseg.read_table(out)
    assert len(t["Histogram"]) == n + 1
    for band in range(1, 5):
        assert f"Band{band}_Mean" in t and f"Band{band}_LQ" in t


def test_pyshepseg_builtin_user_functions_match_shepsegs_own(rgbn, tmp_path):
    seg = rgbn.copy_of(rgbn.meta["stats"]["segmentation"], tmp_path)
    transform = numpy.array(shepseg.raster_info(rgbn.input)["geotransform"])
    tilingstats.calcPerSegmentSpatialStatsTiled(
        rgbn.input, 1, seg, [("e", tilingstats.GFT_Real), ("n", tilingstats.GFT_Real)],
        tilingstats.userFuncMeanCoord, transform)
    tilingstats.calcPerSegmentSpatialStatsTiled(
        rgbn.input, 1, seg, [("edge", tilingstats.GFT_Integer)],
        tilingstats.userFuncNumEdgePixels, True)
    tilingstats.calcPerSegmentSpatialStatsTiled(
        rgbn.input, 1, seg, [(f"v{d}", tilingstats.GFT_Real) for d in range(1, 4)],
        tilingstats.userFuncVariogram, 3)
    shepseg.stats(seg, rgbn.input, bands=[], stats=[], spatial_band=1,
                  spatial=["meancoord", "edgepixels", "variogram:3"])
    t = shepseg.read_table(seg)
    assert numpy.allclose(t["e"][1:], t["Band_1_easting"][1:], rtol=1e-12)
    assert numpy.allclose(t["n"][1:], t["Band_1_northing"][1:], rtol=1e-12)
    assert numpy.array_equal(t["edge"][1:], t["Band_1_edgepixels"][1:])
    for d in range(1, 4):
        assert numpy.allclose(t[f"v{d}"][1:], t[f"variogram{d}"][1:], rtol=1e-9), d


def test_fargate_configuration_errors_name_the_key(rgbn, tmp_path):
    cfg = tiling.SegmentationConcurrencyConfig(
        tiling.CONC_FARGATE, numWorkers=2, fargateCfg=tiling.FargateConfig(containerImage="img"))
    with pytest.raises(shepseg.ShepsegError, match="subnet"):
        tiling.doTiledShepherdSegmentation(rgbn.input, str(tmp_path / "s.tif"),
                                           outputDriver="GTiff", concurrencyCfg=cfg)
    assert os.listdir(tmp_path) == []


def test_one_gdal_shared_with_osgeo(rgbn, tmp_path):
    gdal = pytest.importorskip("osgeo.gdal")
    img = gdal.Open(rgbn.input).ReadAsArray()
    r = shepseg.segment(img, fixed_kmeans_init=True)
    out = tmp_path / "seg.kea"
    # The same k-means model: the tiled fit subsamples the file, not the array.
    res = tiling.doTiledShepherdSegmentation(rgbn.input, str(out), kmeansObj=r.centres,
                                             returnGDALDS=True)
    rat = res.outDs.GetRasterBand(1).GetDefaultRAT()
    assert rat.GetRowCount() == res.maxSegId + 1
    assert res.outDs.GetDriver().ShortName == "HFA"
    assert res.maxSegId == r.num_segments
    assert (res.outDs.GetRasterBand(1).ReadAsArray() == r.segimg).all()
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "libgdal.so" in line}
    assert len(libs) == 1, libs
