"""pyshepseg's ``shepseg`` module: in-memory segmentation (``doShepherdSegmentation``)."""

import numpy

import shepseg as _native

from ._warn import warn_mode

SegIdType = numpy.uint32
SEGNULLVAL = 0
MINSEGID = SEGNULLVAL + 1


class FittedKMeans:
    """The fitted k-means model, with the attributes pyshepseg's callers read of
    scikit-learn's KMeans: ``cluster_centers_`` (clusters, bands) and ``n_clusters``. Pass it
    back as ``kmeansObj``."""

    def __init__(self, centres):
        self.cluster_centers_ = centres
        self.n_clusters = 0 if centres is None else centres.shape[0]

    def __repr__(self):
        return f"FittedKMeans(n_clusters={self.n_clusters})"


class SegmentationResult(object):
    """Results of the segmentation process, as pyshepseg names them.

    Attributes
    ----------
      segimg : numpy array (nRows, nCols) of uint32, segment IDs from 1 (0 null)
      kmeans : FittedKMeans, with ``cluster_centers_``
      maxSpectralDiff : float
      singlePixelsEliminated : int
      smallSegmentsEliminated : int
    """

    def __init__(self):
        self.segimg = None
        self.kmeans = None
        self.maxSpectralDiff = None
        self.singlePixelsEliminated = None
        self.smallSegmentsEliminated = None


def doShepherdSegmentation(img, numClusters=60, clusterSubsamplePcnt=1,
                           minSegmentSize=50, maxSpectralDiff='auto', imgNullVal=None,
                           fourConnected=True, verbose=False, fixedKMeansInit=False,
                           kmeansObj=None, spectDistPcntile=50, pyshepseg_compat=False):
    """Shepherd segmentation of the (nBands, nRows, nCols) array ``img``, in memory, with
    pyshepseg's arguments (see its documentation); ``kmeansObj`` is anything with
    ``cluster_centers_`` (scikit-learn's KMeans included). ``pyshepseg_compat=True``
    reproduces pyshepseg exactly.

    Returns a :class:`SegmentationResult`.
    """
    warn_mode(pyshepseg_compat)
    r = _native.segment(img, null_value=imgNullVal, num_clusters=numClusters,
                        cluster_subsample_pcnt=clusterSubsamplePcnt,
                        min_segment_size=minSegmentSize, max_spectral_diff=maxSpectralDiff,
                        spect_dist_pcntile=spectDistPcntile, four_connected=fourConnected,
                        fixed_kmeans_init=fixedKMeansInit, pyshepseg_compat=pyshepseg_compat,
                        model=kmeansObj)
    if verbose:
        print(f"Segmented: {r.num_segments} segments, maxSpectralDiff {r.max_spectral_diff:g}, "
              f"{r.single_pixels_eliminated} single pixels and "
              f"{r.small_segments_eliminated} small segments eliminated")
    res = SegmentationResult()
    res.segimg = r.segimg
    res.kmeans = FittedKMeans(r.centres)
    res.maxSpectralDiff = r.max_spectral_diff
    res.singlePixelsEliminated = r.single_pixels_eliminated
    res.smallSegmentsEliminated = r.small_segments_eliminated
    return res
