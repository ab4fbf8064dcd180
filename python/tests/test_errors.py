"""Bad arguments raise ShepsegError (a RuntimeError, never a bare TypeError) with one line,
and leave nothing at the output."""

import os

import numpy
import pytest

import shepseg
from shepseg.compat import tiling

GOOD = numpy.zeros((1, 8, 8), dtype=numpy.uint8)


def bad_calls(rgbn, tmp, float_raster):
    out = str(tmp / "out.tif")
    return [
        (lambda: shepseg.segment([[1, 2]]), "img must be a numpy array"),
        (lambda: shepseg.segment(numpy.zeros((8, 8))), "3-d array"),
        (lambda: shepseg.segment(numpy.zeros((1, 8, 8), dtype=numpy.complex64)), "dtype complex64"),
        (lambda: shepseg.segment(numpy.zeros((1, 8, 8), dtype=object)), "dtype object"),
        (lambda: shepseg.segment(GOOD, num_clusters="many"), "num_clusters must be an integer"),
        (lambda: shepseg.segment(GOOD, min_segment_size=0), "min_segment_size must be at least 1"),
        (lambda: shepseg.segment(GOOD, null_value=300), "null_value 300"),
        (lambda: shepseg.segment(GOOD, null_value=1.5), "null_value 1.5"),
        (lambda: shepseg.segment(GOOD, max_spectral_diff="big"), "max_spectral_diff"),
        (lambda: shepseg.segment(GOOD, spect_dist_pcntile=101), "percentile"),
        (lambda: shepseg.segment(GOOD, model=[[1, 2], [3, 4]]), "model has 2 bands"),
        (lambda: shepseg.segment(GOOD, model="x"), "model"),
        (lambda: shepseg.segment(GOOD, model={"centres": [[1]]}), "cluster_centers"),
        (lambda: shepseg.tiled_segment(str(tmp / "missing.tif"), out), "missing.tif"),
        (lambda: shepseg.tiled_segment(rgbn.input, out, executor="gpu"), "executor must be"),
        (lambda: shepseg.tiled_segment(rgbn.input, out, workers=0), "workers must be at least 1"),
        (lambda: shepseg.tiled_segment(rgbn.input, out, bands=[9]), "band 9"),
        (lambda: shepseg.tiled_segment(rgbn.input, out, tile_timeout=-1), "tile_timeout"),
        (lambda: shepseg.tiled_segment(rgbn.input, out, executor="fargate"), "fargate_config"),
        (lambda: shepseg.tiled_segment(rgbn.input, out, executor="fargate",
                                       fargate_config={"containerImage": "x"}), "subnet"),
        (lambda: shepseg.tiled_segment(rgbn.input, out, driver="NoSuchDriver"), "NoSuchDriver"),
        (lambda: shepseg.tiled_segment(12, out), "infile must be a path"),
        (lambda: shepseg.tiled_segment(rgbn.input, out, stats_bands=[1], stats=["avg"]), "avg"),
        (lambda: shepseg.stats(float_raster, float_raster, bands=[1]), "not a segmentation"),
        (lambda: shepseg.stats(str(tmp / "none.tif"), rgbn.input), "none.tif"),
        (lambda: shepseg.stats(rgbn.input, rgbn.input, user_func=print), "user_func needs user_columns"),
        (lambda: shepseg.subset(rgbn.input, out), "exactly one of"),
        (lambda: shepseg.polygonize(float_raster, str(tmp / "v.gpkg")), "float.img"),
        (lambda: shepseg.polygonize(rgbn.input, str(tmp / "v.gpkg"), simplify=-1), "simplify"),
        (lambda: shepseg.polygonize(rgbn.input, str(tmp / "v.gpkg"), simplify="x"), "simplify"),
        (lambda: shepseg.read_raster(str(tmp / "nothing.tif")), "nothing.tif"),
        (lambda: tiling.SegmentationConcurrencyConfig("CONC_MAGIC"), "CONC_MAGIC"),
    ]


def test_bad_arguments_raise_one_line_shepseg_errors(rgbn, tmp_path, float_raster):
    for call, fragment in bad_calls(rgbn, tmp_path, float_raster):
        with pytest.raises(shepseg.ShepsegError) as info:
            call()
        text = str(info.value)
        assert fragment in text, (fragment, text)
        assert "\n" not in text, text
        assert not isinstance(info.value, TypeError)
    assert not os.path.exists(tmp_path / "out.tif")
    assert [p for p in os.listdir(tmp_path) if "partial" in p] == []


def test_an_existing_output_is_kept_without_overwrite(rgbn, tmp_path):
    out = tmp_path / "seg.tif"
    out.write_bytes(b"precious")
    with pytest.raises(shepseg.ShepsegError, match="exists"):
        shepseg.tiled_segment(rgbn.input, out)
    assert out.read_bytes() == b"precious"
