"""pyshepseg's ``tiling`` module: ``doTiledShepherdSegmentation`` and its configuration
classes."""

import shepseg as _native

from ._warn import warn_mode, warn_once
from .shepseg import FittedKMeans

DFLT_TEMPFILES_DRIVER = 'KEA'
DFLT_TEMPFILES_EXT = 'kea'
DFLT_TILESIZE = 4096
DFLT_OVERLAPSIZE = 1024
DFLT_CHUNKSIZE = 100000
TILESIZE = 1024

CONC_NONE = "CONC_NONE"
CONC_THREADS = "CONC_THREADS"
CONC_FARGATE = "CONC_FARGATE"
CONC_SUBPROC = "CONC_SUBPROC"

HORIZONTAL = 0
VERTICAL = 1
RIGHT_OVERLAP = 'right'
BOTTOM_OVERLAP = 'bottom'

# shepseg's executor for each of pyshepseg's concurrency types.
_EXECUTORS = {
    CONC_NONE: "sequential",
    CONC_THREADS: "threads",
    CONC_SUBPROC: "processes",
    CONC_FARGATE: "fargate",
}


class PyShepSegTilingError(_native.ShepsegError):
    """pyshepseg's tiling error (a ShepsegError)."""


class TiledSegmentationResult(object):
    """Result of tiled segmentation, as pyshepseg names it.

    Attributes
    ----------
      maxSegId : int, the largest segment ID
      numTileRows, numTileCols : int, the tile grid
      subsamplePcnt : float, percentage of the image sampled for the clustering
      maxSpectralDiff : float, the value used
      kmeans : FittedKMeans, with ``cluster_centers_``
      hasEmptySegments : bool (always False: shepseg's IDs have no gaps)
      timings : dict, seconds per phase
      outDs : gdal.Dataset open in update mode, when ``returnGDALDS`` (needs osgeo)
      report : dict, shepseg's full report
    """

    def __init__(self):
        self.maxSegId = None
        self.numTileRows = None
        self.numTileCols = None
        self.subsamplePcnt = None
        self.maxSpectralDiff = None
        self.kmeans = None
        self.hasEmptySegments = None
        self.outDs = None
        self.timings = None
        self.report = None


class SegmentationConcurrencyConfig:
    """Configuration for concurrency, as pyshepseg's: CONC_NONE (one tile after another),
    CONC_THREADS (``numWorkers`` threads), CONC_SUBPROC (``numWorkers`` local worker processes)
    or CONC_FARGATE (``numWorkers`` AWS Fargate tasks, configured by ``fargateCfg``)."""

    def __init__(self, concurrencyType=CONC_NONE, numWorkers=0,
                 maxConcurrentReads=20, tileCompletionTimeout=60,
                 barrierTimeout=300, fargateCfg=None):
        self.concurrencyType = concurrencyType
        self.numWorkers = numWorkers
        self.maxConcurrentReads = maxConcurrentReads
        self.tileCompletionTimeout = tileCompletionTimeout
        self.barrierTimeout = barrierTimeout
        self.fargateCfg = fargateCfg
        if concurrencyType not in _EXECUTORS:
            raise PyShepSegTilingError(f"Unknown concurrencyType '{concurrencyType}'")
        if concurrencyType == CONC_FARGATE and fargateCfg is None:
            raise PyShepSegTilingError("fargateCfg is required with CONC_FARGATE")
        if concurrencyType != CONC_FARGATE and fargateCfg is not None:
            raise PyShepSegTilingError("fargateCfg is only used with CONC_FARGATE")


class FargateConfig:
    """Configuration for AWS Fargate, with pyshepseg's arguments. The container image must
    hold shepseg (the repository's Dockerfile), whose ``shepseg worker`` the tasks run."""

    def __init__(self, containerImage=None, taskRoleArn=None,
                 executionRoleArn=None, subnet=None,
                 securityGroups=None, cpu='0.5 vCPU', memory='1GB',
                 cpuArchitecture=None, cloudwatchLogGroup=None):
        self.containerImage = containerImage
        self.taskRoleArn = taskRoleArn
        self.executionRoleArn = executionRoleArn
        self.subnet = subnet
        self.securityGroups = securityGroups
        self.cpu = cpu
        self.memory = memory
        self.cpuArchitecture = cpuArchitecture
        self.logGroup = cloudwatchLogGroup

    def as_dict(self):
        """The configuration as shepseg's ``fargate_config`` keys."""
        d = {
            "securityGroups": list(self.securityGroups or []),
            "cpu": str(self.cpu),
            "memory": str(self.memory),
        }
        for key, value in (("containerImage", self.containerImage),
                           ("subnet", self.subnet),
                           ("taskRoleArn", self.taskRoleArn),
                           ("executionRoleArn", self.executionRoleArn),
                           ("cpuArchitecture", self.cpuArchitecture),
                           ("cloudwatchLogGroup", self.logGroup)):
            if value is not None:
                d[key] = value
        return d


def doTiledShepherdSegmentation(infile, outfile, tileSize=DFLT_TILESIZE,
                                overlapSize=DFLT_OVERLAPSIZE, minSegmentSize=50, numClusters=60,
                                bandNumbers=None, subsamplePcnt=None, maxSpectralDiff='auto',
                                imgNullVal=None, fixedKMeansInit=False, fourConnected=True,
                                verbose=False, simpleTileRecode=False, outputDriver='KEA',
                                creationOptions=[], spectDistPcntile=50, kmeansObj=None,
                                tempfilesDriver=DFLT_TEMPFILES_DRIVER,
                                tempfilesExt=DFLT_TEMPFILES_EXT,
                                tempfilesCreationOptions=[], writeHistogram=True,
                                returnGDALDS=False, concurrencyCfg=None,
                                pyshepseg_compat=False):
    """Tiled Shepherd segmentation of ``infile`` into ``outfile``, with pyshepseg's arguments
    (see its documentation).

    In the default mode the result does not depend on the tiles: ``tileSize`` and
    ``overlapSize`` are not needed and shepseg's own tile size is used. With
    ``pyshepseg_compat=True`` they are pyshepseg's and the result is pyshepseg's, bit for bit.
    shepseg keeps no temporary tile files, so ``tempfilesDriver``, ``tempfilesExt`` and
    ``tempfilesCreationOptions`` are accepted and ignored, as are ``simpleTileRecode`` and
    ``writeHistogram`` (the histogram is always written). ``outputDriver='KEA'`` falls back to
    HFA, with a warning, where GDAL has no KEA driver. The output is replaced if it exists, as
    pyshepseg's is.

    Returns a :class:`TiledSegmentationResult`.
    """
    warn_mode(pyshepseg_compat)
    if concurrencyCfg is None:
        concurrencyCfg = SegmentationConcurrencyConfig()
    for name, value, default in (("simpleTileRecode", simpleTileRecode, False),
                                 ("tempfilesDriver", tempfilesDriver, DFLT_TEMPFILES_DRIVER),
                                 ("tempfilesExt", tempfilesExt, DFLT_TEMPFILES_EXT),
                                 ("tempfilesCreationOptions", list(tempfilesCreationOptions), []),
                                 ("writeHistogram", writeHistogram, True)):
        if value != default:
            warn_once(f"ignored-{name}", f"{name} is ignored: shepseg has no use for it")
    if outputDriver == "KEA" and not _native._shepseg.gdal_driver_available("KEA"):
        warn_once("kea", "this GDAL has no KEA driver: writing HFA instead (pass outputDriver "
                  "to choose another)")
        outputDriver = "HFA"
    executor = _EXECUTORS.get(concurrencyCfg.concurrencyType)
    if executor is None:
        raise PyShepSegTilingError(f"Unknown concurrencyType '{concurrencyCfg.concurrencyType}'")
    workers = concurrencyCfg.numWorkers if concurrencyCfg.numWorkers else None
    fargate = None
    if executor == "fargate":
        cfg = concurrencyCfg.fargateCfg
        fargate = cfg.as_dict() if isinstance(cfg, FargateConfig) else cfg
    tile_timeout = concurrencyCfg.tileCompletionTimeout
    if executor == "sequential":
        tile_timeout = None
    kwargs = {}
    if pyshepseg_compat:
        kwargs = {"tile_size": tileSize, "overlap_size": overlapSize}
    report = _native.tiled_segment(
        infile, outfile, bands=bandNumbers, null_value=imgNullVal, num_clusters=numClusters,
        min_segment_size=minSegmentSize, max_spectral_diff=maxSpectralDiff,
        spect_dist_pcntile=spectDistPcntile, four_connected=fourConnected,
        fixed_kmeans_init=fixedKMeansInit, subsample_pcnt=subsamplePcnt, model=kmeansObj,
        driver=outputDriver, creation_options=list(creationOptions), overwrite=True,
        executor=executor, workers=workers,
        max_concurrent_reads=concurrencyCfg.maxConcurrentReads, tile_timeout=tile_timeout,
        fargate_config=fargate, barrier_timeout=concurrencyCfg.barrierTimeout,
        verbose=bool(verbose), pyshepseg_compat=pyshepseg_compat, **kwargs)
    res = TiledSegmentationResult()
    res.maxSegId = report["num_segments"]
    res.numTileRows = report["tile_rows"]
    res.numTileCols = report["tile_cols"]
    res.subsamplePcnt = report["subsample_pcnt"]
    res.maxSpectralDiff = report["max_spectral_diff_used"]
    centres = report["kmeans"]["cluster_centers"] if report.get("kmeans") else None
    import numpy
    res.kmeans = FittedKMeans(None if centres is None else numpy.asarray(centres, dtype=numpy.float64))
    res.hasEmptySegments = False
    res.timings = report["timings_s"]
    res.report = report
    if returnGDALDS:
        try:
            from osgeo import gdal
        except ImportError:
            warn_once("gdalds", "returnGDALDS needs GDAL's Python bindings (osgeo): outDs is None")
        else:
            res.outDs = gdal.Open(str(outfile), gdal.GA_Update)
    return res
