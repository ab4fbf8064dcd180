"""Shared fixtures: the reference cases copied into the repository (testdata/reference, from
pyshepseg's own runs; see testdata/README.md)."""

import json
import pathlib
import shutil

import numpy
import pytest

REFERENCE = pathlib.Path(__file__).resolve().parents[2] / "testdata" / "reference"


class Case:
    """One reference case: its folder and case.json."""

    def __init__(self, name):
        self.name = name
        self.dir = REFERENCE / name
        self.meta = json.loads((self.dir / "case.json").read_text())
        self.input = str(self.dir / self.meta["input"])

    def centres(self, key):
        text = (self.dir / key).read_text()
        return numpy.asarray(json.loads(text)["cluster_centers"], dtype=numpy.float64)

    def copy_of(self, name, dest):
        """A copy of one of the case's files in ``dest`` (statistics write into their file)."""
        out = pathlib.Path(dest) / name
        shutil.copy(self.dir / name, out)
        aux = self.dir / (name + ".aux.xml")
        if aux.exists():
            shutil.copy(aux, str(out) + ".aux.xml")
        return str(out)


_ENVI_TYPES = {"uint8": 1, "int16": 2, "int32": 3, "float32": 4, "float64": 5, "uint16": 12,
               "uint32": 13}


def write_envi(path, array):
    """Writes a (bands, rows, cols) array as an ENVI raster (raw BSQ and a .hdr), which GDAL
    reads: test rasters without GDAL's Python bindings."""
    array = numpy.ascontiguousarray(array)
    bands, rows, cols = array.shape
    path = pathlib.Path(path)
    array.astype(array.dtype.newbyteorder("<")).tofile(path)
    path.with_suffix(".hdr").write_text(
        f"ENVI\nsamples = {cols}\nlines = {rows}\nbands = {bands}\nheader offset = 0\n"
        f"file type = ENVI Standard\ndata type = {_ENVI_TYPES[array.dtype.name]}\n"
        f"interleave = bsq\nbyte order = 0\n")
    return str(path)


@pytest.fixture(scope="session")
def float_raster(tmp_path_factory):
    """A small Float32 raster: not a segmentation."""
    rng = numpy.random.default_rng(3)
    return write_envi(tmp_path_factory.mktemp("float") / "float.img",
                      rng.random((1, 40, 50), dtype=numpy.float32))


@pytest.fixture(scope="session")
def rgbn():
    return Case("rgbn")


@pytest.fixture(scope="session")
def synth8000():
    return Case("synth8000")
