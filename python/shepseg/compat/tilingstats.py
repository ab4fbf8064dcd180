"""pyshepseg's ``tilingstats`` module: per-segment statistics into the attribute table."""

import numpy

import shepseg as _native



# gdal.GFT_Integer and gdal.GFT_Real, for scripts without GDAL's Python bindings.
GFT_Integer = 0
GFT_Real = 1


class PyShepSegStatsError(_native.ShepsegError):
    """pyshepseg's statistics error (a ShepsegError)."""


class TiledStatsResult:
    """Result of tiled per-segment statistics: ``timings`` (seconds) and ``columns`` (the
    columns written)."""

    def __init__(self):
        self.timings = None
        self.columns = None


class SegPoint(object):
    """One pixel of a segment: column ``x`` and row ``y`` in the whole image, and its value."""

    def __init__(self, x, y, val):
        self.x = x
        self.y = y
        self.val = val


def _path_of(ds_or_path):
    """A path from a path or an open gdal.Dataset (flushed, so that shepseg reads its data)."""
    if hasattr(ds_or_path, "GetDescription"):
        ds_or_path.FlushCache()
        return ds_or_path.GetDescription()
    return ds_or_path


def _bands(imgbandnum):
    if isinstance(imgbandnum, (list, tuple, numpy.ndarray)):
        return [int(b) for b in imgbandnum]
    return [imgbandnum]


def _stat_name(entry):
    """shepseg's name of one statsSelection entry (colName, statName[, param])."""
    if not isinstance(entry, (list, tuple)) or len(entry) not in (2, 3):
        raise PyShepSegStatsError(f"statsSelection: expected (columnName, statName[, param]), got {entry!r}")
    name = entry[1]
    if name == "percentile":
        if len(entry) != 3:
            raise PyShepSegStatsError(f"statsSelection: 'percentile' needs a parameter in {entry!r}")
        return f"percentile:{entry[2]}"
    if name in ("min", "max", "mean", "stddev", "median", "mode", "pixcount"):
        return name
    raise PyShepSegStatsError(f"statsSelection: unknown statistic {name!r}")


def calcPerSegmentStatsTiled(imgfile, imgbandnum, segfile, statsSelection,
                             missingStatsValue=-9999, pyshepseg_compat=False):
    """Per-segment statistics of band ``imgbandnum`` of ``imgfile`` (a list of bands is
    accepted too), written to the attribute table of ``segfile`` (a path or an open
    gdal.Dataset), in the columns ``statsSelection`` names, with pyshepseg's arguments.

    With several bands, a column name containing ``{band}`` has it replaced by the band
    number; other names get ``_b{band}`` appended. The statistics are the same in both modes
    (``pyshepseg_compat`` is accepted for symmetry).

    Returns a :class:`TiledStatsResult`.
    """
    del pyshepseg_compat
    import time
    start = time.perf_counter()
    bands = _bands(imgbandnum)
    stats = [_stat_name(e) for e in statsSelection]
    names = []
    for b in bands:
        for e in statsSelection:
            col = str(e[0])
            if len(bands) > 1:
                col = col.replace("{band}", str(b)) if "{band}" in col else f"{col}_b{b}"
            names.append(col)
    columns = _native.stats(_path_of(segfile), imgfile, bands=bands, stats=stats,
                            column_names=names, missing_value=missingStatsValue)
    res = TiledStatsResult()
    res.timings = {"walltime": time.perf_counter() - start}
    res.columns = columns
    return res


def calcPerSegmentSpatialStatsTiled(imgfile, imgbandnum, segfile, colNamesAndTypes, userFunc,
                                    userParam=None, missingStatsValue=-9999,
                                    pyshepseg_compat=False):
    """Spatial statistics by a user function, as pyshepseg's: ``userFunc(pts, imgNullVal,
    intArr, floatArr, userParam)`` is called once per segment with its pixels as a list of
    :class:`SegPoint`, and fills ``intArr`` and ``floatArr`` (preset to
    ``missingStatsValue``) for the integer and real columns of ``colNamesAndTypes``
    (``(name, gdal.GFT_Integer or gdal.GFT_Real)``), in their order. The function is plain
    Python here (a numba-compiled one works too, called from Python).

    Returns a :class:`TiledStatsResult`.
    """
    del pyshepseg_compat
    import time
    start = time.perf_counter()
    bands = _bands(imgbandnum)
    if len(bands) != 1:
        raise PyShepSegStatsError("imgbandnum: spatial statistics use one band")
    info = _native.raster_info(imgfile)
    band = bands[0]
    if not 1 <= band <= info["bands"]:
        raise PyShepSegStatsError(f"{imgfile}: has no band {band}")
    null = info["nodata"][band - 1]
    integer = not info["types"][band - 1].startswith("Float")
    if null is not None and integer:
        null = int(null)
    cols = []
    int_slots = []
    float_slots = []
    for i, entry in enumerate(colNamesAndTypes):
        try:
            name, kind = entry
        except (TypeError, ValueError):
            raise PyShepSegStatsError(f"colNamesAndTypes: expected (name, type), got {entry!r}") from None
        if kind == GFT_Integer:
            cols.append((str(name), "int"))
            int_slots.append(i)
        elif kind == GFT_Real:
            cols.append((str(name), "real"))
            float_slots.append(i)
        else:
            raise PyShepSegStatsError(f"colNamesAndTypes: type of {name!r} must be GFT_Integer or GFT_Real")

    def call(xs, ys, values, out):
        if integer:
            vals = values.astype(numpy.int64).tolist()
        else:
            vals = values.tolist()
        pts = [SegPoint(x, y, v) for x, y, v in zip(xs.tolist(), ys.tolist(), vals)]
        int_arr = numpy.full(len(int_slots), missingStatsValue, dtype=numpy.int32)
        float_arr = numpy.full(len(float_slots), missingStatsValue, dtype=numpy.float64)
        userFunc(pts, null, int_arr, float_arr, userParam)
        for k, slot in enumerate(int_slots):
            out[slot] = int_arr[k]
        for k, slot in enumerate(float_slots):
            out[slot] = float_arr[k]

    columns = _native.stats(_path_of(segfile), imgfile, bands=[], stats=[],
                            spatial_band=band, missing_value=missingStatsValue,
                            user_columns=cols, user_func=call)
    res = TiledStatsResult()
    res.timings = {"walltime": time.perf_counter() - start}
    res.columns = columns
    return res


def convertPtsInto2DArray(pts, imgNullVal):
    """A segment's points as a 2-d array just covering them, ``imgNullVal`` elsewhere (as
    pyshepseg's helper)."""
    xs = [p.x for p in pts]
    ys = [p.y for p in pts]
    xmin, ymin = min(xs), min(ys)
    integer = all(isinstance(p.val, (int, numpy.integer)) for p in pts)
    tile = numpy.full((max(ys) - ymin + 1, max(xs) - xmin + 1),
                      0 if imgNullVal is None else imgNullVal,
                      dtype=numpy.int64 if integer else numpy.float64)
    for p in pts:
        tile[p.y - ymin, p.x - xmin] = p.val
    return tile




def convertPtsInto2DMaskArray(pts, imgNullVal):
    """A segment's points as a uint8 mask just covering them (1 where a point is), as
    pyshepseg's helper."""
    xs = numpy.fromiter((p.x for p in pts), dtype=numpy.int64, count=len(pts))
    ys = numpy.fromiter((p.y for p in pts), dtype=numpy.int64, count=len(pts))
    mask = numpy.zeros((ys.max() - ys.min() + 1, xs.max() - xs.min() + 1), dtype=numpy.uint8)
    mask[ys - ys.min(), xs - xs.min()] = 1
    return mask


def userFuncMeanCoord(pts, imgNullVal, intArr, floatArr, transform):
    """pyshepseg's mean coordinate of a segment's pixels (their top-left corners) through the
    geotransform ``transform`` (the ``userParam``): easting and northing into ``floatArr``."""
    xs = numpy.fromiter((p.x for p in pts), dtype=numpy.float64, count=len(pts))
    ys = numpy.fromiter((p.y for p in pts), dtype=numpy.float64, count=len(pts))
    t = transform
    floatArr[0] = float(numpy.sum(t[0] + t[1] * xs + t[2] * ys)) / len(pts)
    floatArr[1] = float(numpy.sum(t[3] + t[4] * xs + t[5] * ys)) / len(pts)


def userFuncNumEdgePixels(pts, imgNullVal, intArr, floatArr, fourConnected):
    """pyshepseg's number of edge pixels of a segment (``userParam``: fourConnected) into
    ``intArr[0]``: pixels on the segment's bounding box or with a neighbour outside it. As in
    pyshepseg, the 8-way test looks at the south-east neighbour twice and never at the
    north-east one."""
    mask = convertPtsInto2DMaskArray(pts, imgNullVal).astype(numpy.int64)
    ysize, xsize = mask.shape
    edge = mask.copy()
    if ysize > 2 and xsize > 2:
        c = mask[1:-1, 1:-1]
        if fourConnected:
            total = mask[:-2, 1:-1] + mask[2:, 1:-1] + mask[1:-1, :-2] + mask[1:-1, 2:]
            full = 4
        else:
            total = (mask[:-2, :-2] + mask[:-2, 1:-1] + mask[2:, 2:] + mask[1:-1, :-2]
                     + mask[1:-1, 2:] + mask[2:, :-2] + mask[2:, 1:-1] + mask[2:, 2:])
            full = 8
        edge[1:-1, 1:-1] = numpy.where((c == 1) & (total == full), 0, c)
    intArr[0] = int(edge.sum())


def userFuncVariogram(pts, imgNullVal, intArr, floatArr, maxDist):
    """pyshepseg's variogram of a segment (``userParam``: maxDist) into ``floatArr[0:maxDist]``:
    for each integer distance d, the root mean squared difference of pixel pairs at offsets
    (dy, dx), both 1..maxDist, with int(sqrt(dx^2 + dy^2)) == d. Differences are taken in
    float64 (pyshepseg takes them in the image's type, which wraps for unsigned images)."""
    tile = convertPtsInto2DArray(pts, imgNullVal).astype(numpy.float64)
    valid = convertPtsInto2DMaskArray(pts, imgNullVal).astype(bool)
    if imgNullVal is not None:
        valid &= tile != imgNullVal
    ysize, xsize = tile.shape
    counts = numpy.zeros(maxDist, dtype=numpy.int64)
    sums = numpy.zeros(maxDist, dtype=numpy.float64)
    for dy in range(1, maxDist + 1):
        for dx in range(1, maxDist + 1):
            d = int(numpy.sqrt(dy * dy + dx * dx))
            if d > maxDist or dy >= ysize or dx >= xsize:
                continue
            both = valid[:-dy, :-dx] & valid[dy:, dx:]
            diff = tile[:-dy, :-dx] - tile[dy:, dx:]
            counts[d - 1] += int(both.sum())
            sums[d - 1] += float((diff[both] ** 2).sum())
    for n in range(maxDist):
        if counts[n] > 0:
            floatArr[n] = numpy.sqrt(sums[n] / counts[n])
