"""shepseg: fast Shepherd segmentation of large rasters, from Python.

The native API::

    import shepseg
    res = shepseg.segment(img)                     # (bands, rows, cols) numpy array
    report = shepseg.tiled_segment("in.tif", "segs.tif", executor="threads", workers=4)
    shepseg.stats("segs.tif", "in.tif", bands=[1, 2], stats=["mean", "stddev"])
    shepseg.subset("segs.tif", "part.tif", srcwin=(0, 0, 512, 512))
    shepseg.polygonize("segs.tif", "segs.gpkg")

pyshepseg's API, for existing scripts: ``from shepseg.compat import shepseg, tiling,
tilingstats, subset``.

Every error is a :class:`ShepsegError` (a ``RuntimeError``) with a one-line message. The work
runs without the GIL; Ctrl-C raises ``KeyboardInterrupt`` and leaves no output behind.
"""

import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy

from . import _shepseg
from ._shepseg import ShepsegError, __version__

__all__ = [
    "ShepsegError",
    "SegmentationResult",
    "segment",
    "tiled_segment",
    "stats",
    "subset",
    "polygonize",
    "raster_info",
    "read_raster",
    "read_table",
    "__version__",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Segment ID of null pixels.
SEG_NULL = 0

_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
           "float32", "float64")


class SegmentationResult:
    """What :func:`segment` returns.

    Attributes
    ----------
    segimg : numpy.ndarray
        Segment IDs (uint32, shape (rows, cols)), 1..num_segments; 0 for null pixels.
    centres : numpy.ndarray or None
        The k-means centres used, shape (clusters, bands); None if the image is all null.
    max_spectral_diff : float
        The maxSpectralDiff value used.
    single_pixels_eliminated : int
    small_segments_eliminated : int
    num_segments : int
    timings : dict
        Seconds per phase (fit, predict, clump, single_pixel, small_segment).
    """

    def __init__(self, d: Dict[str, Any]):
        self.segimg = d["segimg"]
        self.centres = d["centres"]
        self.max_spectral_diff = d["max_spectral_diff"]
        self.single_pixels_eliminated = d["single_pixels_eliminated"]
        self.small_segments_eliminated = d["small_segments_eliminated"]
        self.num_segments = d["num_segments"]
        self.timings = d["timings"]

    def __repr__(self) -> str:
        return (f"SegmentationResult(num_segments={self.num_segments}, "
                f"shape={self.segimg.shape}, max_spectral_diff={self.max_spectral_diff:g})")


def _count(name: str, value: Any, minimum: int = 0) -> int:
    """An integer argument, checked: a ShepsegError naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)):
        raise ShepsegError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ShepsegError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _number(name: str, value: Any) -> float:
    """A real argument, checked."""
    if isinstance(value, bool) or not isinstance(value, (int, float, numpy.integer, numpy.floating)):
        raise ShepsegError(f"{name} must be a number, got {value!r}")
    return float(value)


def _optional(check, name: str, value: Any):
    return None if value is None else check(name, value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, numpy.bool_)):
        raise ShepsegError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _path(name: str, value: Any) -> str:
    try:
        p = os.fspath(value)
    except TypeError:
        raise ShepsegError(f"{name} must be a path, got {value!r}") from None
    if isinstance(p, bytes):
        p = os.fsdecode(p)
    return p


def _counts(name: str, values: Any) -> List[int]:
    if values is None:
        return []
    if isinstance(values, (int, numpy.integer)) and not isinstance(values, bool):
        values = [values]
    try:
        items = list(values)
    except TypeError:
        raise ShepsegError(f"{name} must be a list of integers, got {values!r}") from None
    return [_count(name, v, 1) for v in items]


def _strings(name: str, values: Any) -> List[str]:
    if values is None:
        return []
    if isinstance(values, str):
        return [values]
    try:
        items = list(values)
    except TypeError:
        raise ShepsegError(f"{name} must be a list of strings, got {values!r}") from None
    for v in items:
        if not isinstance(v, str):
            raise ShepsegError(f"{name} must be a list of strings, got {v!r} in it")
    return items


def _max_spectral_diff(value: Any) -> Union[str, float]:
    if isinstance(value, str):
        return value
    return _number("max_spectral_diff", value)


def _centres(model: Any) -> Optional[numpy.ndarray]:
    """Centres from an array, from anything with ``cluster_centers_`` (scikit-learn's
    KMeans), or from a report's ``kmeans`` entry (a dict with ``cluster_centers``)."""
    if model is None:
        return None
    if isinstance(model, dict):
        if "cluster_centers" not in model:
            raise ShepsegError("model: a dict must have 'cluster_centers' (a report's 'kmeans')")
        model = model["cluster_centers"]
    centres = getattr(model, "cluster_centers_", model)
    try:
        arr = numpy.ascontiguousarray(numpy.asarray(centres, dtype=numpy.float64))
    except (TypeError, ValueError) as e:
        raise ShepsegError(f"model: cannot read centres ({e})") from None
    if arr.ndim != 2:
        raise ShepsegError(f"model: centres must be 2-d (clusters, bands), got shape {arr.shape}")
    return arr


def _native(call, *args):
    """Calls the native module, turning conversion errors into ShepsegError."""
    try:
        return call(*args)
    except (TypeError, OverflowError, ValueError) as e:
        raise ShepsegError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def segment(img: numpy.ndarray, *, null_value: Optional[float] = None, num_clusters: int = 60,
            cluster_subsample_pcnt: float = 1.0, min_segment_size: int = 50,
            max_spectral_diff: Union[str, float] = "auto", spect_dist_pcntile: float = 50.0,
            four_connected: bool = True, fixed_kmeans_init: bool = False, seed: int = 0,
            pyshepseg_compat: bool = False, model: Any = None) -> SegmentationResult:
    """Segments an in-memory image: pyshepseg's ``doShepherdSegmentation``.

    Parameters
    ----------
    img : numpy.ndarray
        Shape (bands, rows, cols); uint8, int8, uint16, int16, uint32, int32, uint64, int64,
        float32 or float64. A pixel is null when any band equals ``null_value`` (floats: NaN
        and the infinities are always null).
    num_clusters, cluster_subsample_pcnt, min_segment_size, max_spectral_diff,
    spect_dist_pcntile, four_connected, fixed_kmeans_init :
        pyshepseg's parameters (``numClusters`` ...), with its defaults.
        ``max_spectral_diff`` is ``'auto'``, ``'none'`` or a number.
    seed : int
        Seed of the k-means++ initialisation (ignored with ``fixed_kmeans_init``).
    pyshepseg_compat : bool
        Reproduce pyshepseg bit for bit, defects included.
    model : array, object with ``cluster_centers_``, or a report's ``kmeans``, optional
        k-means centres (clusters, bands) to use instead of fitting.

    Returns
    -------
    SegmentationResult
    """
    if not isinstance(img, numpy.ndarray):
        raise ShepsegError(f"img must be a numpy array of shape (bands, rows, cols), got {type(img).__name__}")
    if img.ndim != 3:
        raise ShepsegError(f"img must be a 3-d array (bands, rows, cols), got shape {img.shape}")
    if img.dtype.name not in _DTYPES:
        raise ShepsegError(f"img has dtype {img.dtype}; shepseg segments {', '.join(_DTYPES)}")
    if not img.dtype.isnative:
        img = img.astype(img.dtype.newbyteorder("="))
    null = null_value
    if null is not None:
        if isinstance(null, bool) or not isinstance(null, (int, float, numpy.integer, numpy.floating)):
            raise ShepsegError(f"null_value must be a number, got {null!r}")
        if img.dtype.kind in "iu":
            if not float(null).is_integer():
                raise ShepsegError(f"null_value {null!r} is not a value of the image's dtype {img.dtype}")
            null = int(null)
            info = numpy.iinfo(img.dtype)
            if not info.min <= null <= info.max:
                raise ShepsegError(f"null_value {null!r} is not a value of the image's dtype {img.dtype}")
        else:
            null = float(null)
    d = _native(_shepseg.segment, img, null,
                _count("num_clusters", num_clusters, 1),
                _number("cluster_subsample_pcnt", cluster_subsample_pcnt),
                _count("min_segment_size", min_segment_size, 1),
                _max_spectral_diff(max_spectral_diff),
                _number("spect_dist_pcntile", spect_dist_pcntile),
                _flag("four_connected", four_connected),
                _flag("fixed_kmeans_init", fixed_kmeans_init),
                _count("seed", seed, 0),
                _flag("pyshepseg_compat", pyshepseg_compat),
                _centres(model))
    return SegmentationResult(d)


def _fargate_json(cfg: Any) -> Optional[str]:
    if cfg is None:
        return None
    if isinstance(cfg, dict):
        return json.dumps(cfg)
    path = _path("fargate_config", cfg)
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise ShepsegError(f"fargate_config {path}: {e.strerror}") from None
    if path.lower().endswith(".toml"):
        try:
            import tomllib  # Python >= 3.11
        except ImportError:
            raise ShepsegError("fargate_config: TOML needs Python 3.11; give JSON or a dict") from None
        try:
            return json.dumps(tomllib.loads(text))
        except tomllib.TOMLDecodeError as e:
            raise ShepsegError(f"fargate_config {path}: {e}") from None
    return text


def _worker_command() -> List[str]:
    """How the ``processes`` executor starts a worker: this interpreter running this package's
    ``__main__`` (found where this package is, whatever the working directory holds)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
            "from shepseg.__main__ import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", code, here]


def tiled_segment(infile: PathLike, outfile: PathLike, *, bands: Optional[Sequence[int]] = None,
                  null_value: Optional[float] = None, num_clusters: int = 60,
                  min_segment_size: int = 50, max_spectral_diff: Union[str, float] = "auto",
                  spect_dist_pcntile: float = 50.0, four_connected: bool = True,
                  fixed_kmeans_init: bool = False, seed: int = 0,
                  subsample_pcnt: Optional[float] = None, tile_size: Optional[int] = None,
                  overlap_size: Optional[int] = None, model: Any = None, driver: str = "GTiff",
                  creation_options: Sequence[str] = (), overwrite: bool = False,
                  executor: str = "threads", workers: Optional[int] = None,
                  max_concurrent_reads: int = 20, tile_timeout: Optional[float] = None,
                  fargate_config: Any = None, listen: Optional[str] = None,
                  advertise: Optional[str] = None, tile_retries: int = 3,
                  barrier_timeout: float = 600.0, heartbeat_timeout: float = 30.0,
                  stats_bands: Sequence[int] = (), stats: Sequence[str] = (),
                  colour_from_bands: Optional[Sequence[int]] = None,
                  gdal_config: Optional[Dict[str, str]] = None, verbose: bool = False,
                  pyshepseg_compat: bool = False, work_dir: Optional[PathLike] = None,
                  resume: bool = False) -> Dict[str, Any]:
    """Segments a raster too large for memory, tile by tile: ``shepseg segment``.

    The default mode's result does not depend on the tiles (their size only changes speed and
    memory); with ``pyshepseg_compat`` the tiles overlap and are stitched as pyshepseg does
    (``tile_size`` 4096 and ``overlap_size`` 1024 by default there).

    Parameters
    ----------
    infile, outfile : path
        Input raster (any GDAL path) and output segmentation (UInt32 IDs, attribute table).
    bands : list of int, optional
        Bands to segment, from 1 (default all).
    null_value : float, optional
        The input's null value (default the bands' nodata value).
    executor : str
        ``'sequential'``, ``'threads'`` (default), ``'processes'`` (local worker processes over
        TCP) or ``'fargate'`` (AWS ECS Fargate tasks; needs ``fargate_config``, a dict or a
        JSON/TOML file with pyshepseg's FargateConfig keys).
    workers : int, optional
        Workers (default one per core).
    stats_bands, stats :
        Per-segment statistics to compute afterwards (``'mean'``, ``'stddev'``, ``'min'``,
        ``'max'``, ``'median'``, ``'mode'``, ``'count'``, ``'percentile:P'``).
    work_dir, resume :
        Where the job keeps its model and finished tiles while it runs (default a hidden
        folder beside ``outfile``), and whether to continue the job found there after a crash
        or an interrupt: finished tiles are not segmented again (``tiles_resumed`` in the
        report), and the output is the uninterrupted run's.
    The other parameters are ``shepseg segment``'s options of the same names.

    Returns
    -------
    dict
        The report: ``num_segments``, ``num_tiles``, ``tile_cols``, ``tile_rows``, ``kmeans``,
        ``max_spectral_diff_used``, ``timings_s``, ``workers`` (remote executors) ...
    """
    infile = _path("infile", infile)
    outfile = _path("outfile", outfile)
    if not isinstance(executor, str):
        raise ShepsegError(f"executor must be a string, got {executor!r}")
    if not isinstance(driver, str):
        raise ShepsegError(f"driver must be a string, got {driver!r}")
    cfg = {}
    if gdal_config:
        cfg = {str(k): str(v) for k, v in dict(gdal_config).items()}
    colour = None
    if colour_from_bands is not None:
        colour = _counts("colour_from_bands", colour_from_bands)
    text = _native(
        _shepseg.tiled_segment, infile, outfile, _counts("bands", bands),
        _optional(_number, "null_value", null_value),
        _count("num_clusters", num_clusters, 1), 1.0,
        _count("min_segment_size", min_segment_size, 1),
        _max_spectral_diff(max_spectral_diff),
        _number("spect_dist_pcntile", spect_dist_pcntile),
        _flag("four_connected", four_connected), _flag("fixed_kmeans_init", fixed_kmeans_init),
        _count("seed", seed, 0), _flag("pyshepseg_compat", pyshepseg_compat),
        _optional(_number, "subsample_pcnt", subsample_pcnt),
        _optional(lambda n, v: _count(n, v, 1), "tile_size", tile_size),
        _optional(_count, "overlap_size", overlap_size),
        _centres(model), driver, _strings("creation_options", creation_options),
        _flag("overwrite", overwrite), executor,
        _optional(lambda n, v: _count(n, v, 1), "workers", workers),
        _count("max_concurrent_reads", max_concurrent_reads, 1),
        _optional(_number, "tile_timeout", tile_timeout),
        _fargate_json(fargate_config), listen, advertise,
        _count("tile_retries", tile_retries, 1), _number("barrier_timeout", barrier_timeout),
        _number("heartbeat_timeout", heartbeat_timeout),
        _counts("stats_bands", stats_bands), _strings("stats", stats), colour,
        _worker_command(), list(cfg.items()), _flag("verbose", verbose),
        None if work_dir is None else _path("work_dir", work_dir), _flag("resume", resume))
    return json.loads(text)


def stats(segfile: PathLike, imgfile: PathLike, bands: Sequence[int] = (1,),
          stats: Sequence[str] = ("mean",), *, column_names: Optional[Sequence[str]] = None,
          spatial: Sequence[str] = (), spatial_band: Optional[int] = None,
          missing_value: float = -9999, workers: Optional[int] = None,
          four_connected: bool = True, colour_from_bands: Optional[Sequence[int]] = None,
          user_columns: Optional[Sequence[Tuple[str, str]]] = None,
          user_func: Any = None) -> List[str]:
    """Per-segment statistics of image bands into the segmentation's attribute table:
    ``shepseg stats`` (pyshepseg's ``calcPerSegmentStatsTiled``, every band in one pass).

    Parameters
    ----------
    segfile, imgfile : path
        The segmentation (its table is updated) and the image, on the same grid.
    bands : list of int
        Image bands, from 1.
    stats : list of str
        ``'mean'``, ``'stddev'``, ``'min'``, ``'max'``, ``'median'``, ``'mode'``, ``'count'``,
        ``'percentile:P'``; columns are named ``Band_{b}_{stat}`` unless ``column_names`` gives
        one name per band and statistic (each band's statistics, band after band).
    spatial : list of str
        Built-in spatial statistics: ``'meancoord'``, ``'edgepixels'``, ``'variogram:MAXDIST'``.
    user_columns, user_func :
        A spatial statistic in Python: ``user_columns`` is a list of ``(name, 'int'|'real')``
        and ``user_func(xs, ys, values, out)`` is called once per segment with numpy arrays of
        its valid pixels' columns, rows and values and fills ``out`` (float64, one slot per
        column, preset to ``missing_value``).
    missing_value : float
        The value of segments without valid pixels.

    Returns
    -------
    list of str
        The columns written.
    """
    segfile = _path("segfile", segfile)
    imgfile = _path("imgfile", imgfile)
    names = _strings("column_names", column_names)
    ucols = []
    for item in user_columns or []:
        try:
            name, kind = item
        except (TypeError, ValueError):
            raise ShepsegError(f"user_columns: expected (name, 'int' or 'real'), got {item!r}") from None
        if kind not in ("int", "real"):
            raise ShepsegError(f"user_columns: type of {name!r} must be 'int' or 'real', got {kind!r}")
        ucols.append((str(name), kind == "int"))
    if user_func is not None and not callable(user_func):
        raise ShepsegError(f"user_func must be callable, got {user_func!r}")
    colour = None
    if colour_from_bands is not None:
        colour = _counts("colour_from_bands", colour_from_bands)
    return _native(
        _shepseg.stats, segfile, imgfile, _counts("bands", bands), _strings("stats", stats),
        names, _strings("spatial", spatial),
        _optional(lambda n, v: _count(n, v, 1), "spatial_band", spatial_band),
        _number("missing_value", missing_value),
        _optional(lambda n, v: _count(n, v, 1), "workers", workers),
        _flag("four_connected", four_connected), colour, ucols, user_func)


def subset(segfile: PathLike, outfile: PathLike, *,
           srcwin: Optional[Tuple[int, int, int, int]] = None,
           projwin: Optional[Tuple[float, float, float, float]] = None,
           mask: Optional[PathLike] = None, orig_id_column: Optional[str] = None,
           driver: str = "GTiff", creation_options: Sequence[str] = (),
           overwrite: bool = False) -> Dict[str, Any]:
    """A part of a segmentation, renumbered 1..N with its attribute table: ``shepseg subset``.

    Give exactly one of ``srcwin`` (col, row, cols, rows), ``projwin`` (ulx, uly, lrx, lry)
    or ``mask`` (a raster on the same grid whose extent is the window and whose zero pixels
    are left out). ``orig_id_column`` names a column to hold each segment's original ID.

    Returns
    -------
    dict
        ``window`` (col, row, cols, rows) and ``segments``.
    """
    segfile = _path("segfile", segfile)
    outfile = _path("outfile", outfile)
    sw = None
    if srcwin is not None:
        try:
            sw = tuple(_count("srcwin", v, 0) for v in srcwin)
        except TypeError:
            raise ShepsegError(f"srcwin must be (col, row, cols, rows), got {srcwin!r}") from None
        if len(sw) != 4:
            raise ShepsegError(f"srcwin must be (col, row, cols, rows), got {srcwin!r}")
    pw = None
    if projwin is not None:
        try:
            pw = tuple(_number("projwin", v) for v in projwin)
        except TypeError:
            raise ShepsegError(f"projwin must be (ulx, uly, lrx, lry), got {projwin!r}") from None
        if len(pw) != 4:
            raise ShepsegError(f"projwin must be (ulx, uly, lrx, lry), got {projwin!r}")
    m = None if mask is None else _path("mask", mask)
    d = _native(_shepseg.subset, segfile, outfile, sw, pw, m, orig_id_column, driver,
                _strings("creation_options", creation_options), _flag("overwrite", overwrite))
    d["window"] = tuple(d["window"])
    return d


def polygonize(segfile: PathLike, output: PathLike, *, driver: Optional[str] = None,
               columns: Optional[Sequence[str]] = None, workers: Optional[int] = None,
               overwrite: bool = False, simplify: Optional[float] = None) -> Dict[str, Any]:
    """The segments as polygons, one feature per segment with its attribute-table columns:
    ``shepseg polygonize``. The driver comes from ``output``'s extension unless given.
    ``simplify`` (map units) simplifies every shared edge once, so neighbours still share
    their edges and every polygon stays valid.

    Returns
    -------
    dict
        ``features``, ``multipolygons``, ``vertices``, ``seconds``.
    """
    cols = None if columns is None else _strings("columns", columns)
    return _native(_shepseg.polygonize, _path("segfile", segfile), _path("output", output),
                   driver, cols, _optional(lambda n, v: _count(n, v, 1), "workers", workers),
                   _flag("overwrite", overwrite), _optional(_number, "simplify", simplify))


def raster_info(path: PathLike) -> Dict[str, Any]:
    """Size (cols, rows), band count, and each band's nodata value and type, read through
    shepseg's GDAL."""
    return _native(_shepseg.raster_info, _path("path", path))


def read_raster(path: PathLike, bands: Optional[Sequence[int]] = None) -> numpy.ndarray:
    """Reads bands (from 1; default all) of a raster whole, as a (bands, rows, cols) array of
    its own pixel type, through shepseg's GDAL: for scripts without GDAL's Python bindings."""
    return _native(_shepseg.read_raster, _path("path", path), _counts("bands", bands))


def read_table(segfile: PathLike, columns: Optional[Sequence[str]] = None) -> Dict[str, numpy.ndarray]:
    """The attribute table of a segmentation: each column (all, or those named) as a numpy
    array (int64 or float64), row ``i`` holding segment ``i``; ready for ``pandas.DataFrame``."""
    cols = None if columns is None else _strings("columns", columns)
    return _native(_shepseg.read_table, _path("segfile", segfile), cols)
