"""Type stubs of the native module ``shepseg._shepseg`` (see the ``shepseg`` package for the
documented API; these functions take every argument positionally, already checked)."""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy

__version__: str

class ShepsegError(RuntimeError):
    """Every error shepseg raises: bad arguments, unreadable inputs, failed jobs. One line."""

def segment(img: numpy.ndarray, null_value: Optional[Union[int, float]], num_clusters: int,
            cluster_subsample_pcnt: float, min_segment_size: int,
            max_spectral_diff: Union[str, float], spect_dist_pcntile: float,
            four_connected: bool, fixed_kmeans_init: bool, seed: int, pyshepseg_compat: bool,
            centres: Optional[numpy.ndarray]) -> Dict[str, Any]:
    """Segments a (bands, rows, cols) array; a dict of the result's fields."""

def tiled_segment(infile: str, outfile: str, bands: List[int], null_value: Optional[float],
                  num_clusters: int, cluster_subsample_pcnt: float, min_segment_size: int,
                  max_spectral_diff: Union[str, float], spect_dist_pcntile: float,
                  four_connected: bool, fixed_kmeans_init: bool, seed: int,
                  pyshepseg_compat: bool, subsample_pcnt: Optional[float],
                  tile_size: Optional[int], overlap_size: Optional[int],
                  centres: Optional[numpy.ndarray], driver: str, creation_options: List[str],
                  overwrite: bool, executor: str, workers: Optional[int],
                  max_concurrent_reads: int, tile_timeout: Optional[float],
                  fargate_config: Optional[str], listen: Optional[str],
                  advertise: Optional[str], tile_retries: int, barrier_timeout: float,
                  heartbeat_timeout: float, stats_bands: List[int], stats: List[str],
                  colour_from_bands: Optional[List[int]], worker_command: List[str],
                  gdal_config: List[Tuple[str, str]], verbose: bool,
                  work_dir: Optional[str], resume: bool) -> str:
    """Runs a tiled segmentation; its report as JSON text."""

def stats(segfile: str, imgfile: str, bands: List[int], stats: List[str],
          column_names: List[str], spatial: List[str], spatial_band: Optional[int],
          missing_value: float, workers: Optional[int], four_connected: bool,
          colour_from_bands: Optional[List[int]], user_columns: List[Tuple[str, bool]],
          user_func: Optional[Callable[[numpy.ndarray, numpy.ndarray, numpy.ndarray,
                                        numpy.ndarray], Any]]) -> List[str]:
    """Per-segment statistics into the segmentation's table; the columns written."""

def subset(segfile: str, outfile: str, srcwin: Optional[Tuple[int, int, int, int]],
           projwin: Optional[Tuple[float, float, float, float]], mask: Optional[str],
           orig_id_column: Optional[str], driver: str, creation_options: List[str],
           overwrite: bool) -> Dict[str, Any]:
    """Writes a part of a segmentation; the window used and the segments kept."""

def polygonize(segfile: str, output: str, driver: Optional[str],
               columns: Optional[List[str]], workers: Optional[int],
               overwrite: bool, simplify: Optional[float]) -> Dict[str, Any]:
    """Writes one feature per segment; counts and seconds."""

def raster_info(path: str) -> Dict[str, Any]:
    """Size, bands, nodata values and types of a raster."""

def gdal_driver_available(name: str) -> bool:
    """Whether GDAL has this raster driver."""

def run_worker(connect: str, name: str, connect_timeout: float) -> int:
    """Works on a coordinator's tiles until none are left; the tiles done."""

def shepseg_simd() -> str:
    """The instruction set the core's kernels use here."""

def read_raster(path: str, bands: List[int]) -> numpy.ndarray:
    """Reads a raster's bands whole, as (bands, rows, cols) of its own type."""

def read_table(path: str, columns: Optional[List[str]]) -> Dict[str, numpy.ndarray]:
    """A segmentation's attribute table, column by column."""
