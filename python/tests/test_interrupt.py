"""Ctrl-C during a tiled run raises KeyboardInterrupt within a second and leaves nothing at
the output but the job's work directory, unlocked, for resume=True. (The job checks between tiles and around the k-means fit: a Ctrl-C during the fit
takes effect when the fit ends, so the child here gives a model and goes straight to tiles.)"""

import os
import signal
import subprocess
import sys
import time

import numpy

from conftest import write_envi

CHILD = r'''
import signal, sys, time
import numpy
import shepseg
# As in an interactive session: a parent that ignores SIGINT (a shell's background job)
# would otherwise hand that on, and Python would never raise KeyboardInterrupt.
signal.signal(signal.SIGINT, signal.default_int_handler)
infile, outfile = sys.argv[1], sys.argv[2]
print("start", flush=True)
try:
    centres = numpy.random.default_rng(2).integers(0, 255, size=(60, 3)).astype(float)
    shepseg.tiled_segment(infile, outfile, tile_size=256, executor="sequential",
                          model=centres)
    print("finished", flush=True)
except KeyboardInterrupt:
    print("interrupted", time.time(), flush=True)
'''


def test_ctrl_c_stops_a_tiled_run_and_removes_its_output(tmp_path_factory):
    # Noise: every tile is slow to segment (mostly single pixels), so the run lasts.
    rng = numpy.random.default_rng(1)
    noise = write_envi(tmp_path_factory.mktemp("noise") / "noise.img",
                       rng.integers(0, 255, size=(3, 5000, 5000), dtype=numpy.uint8))
    tmp_path = tmp_path_factory.mktemp("out")
    out = tmp_path / "seg.tif"
    p = subprocess.Popen([sys.executable, "-c", CHILD, noise, str(out)], cwd=tmp_path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "start"
    # Inside the tiles, which take several seconds in all.
    time.sleep(2.0)
    sent = time.time()
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=60)
    words = stdout.split()
    assert words and words[0] == "interrupted", (stdout, stderr)
    delay = float(words[1]) - sent
    print(f"KeyboardInterrupt {delay:.3f} s after SIGINT")
    assert delay < 1.0
    left = os.listdir(tmp_path)
    assert left in ([], [".seg.tif.shepseg-work"]), left
    if left:
        kept = os.listdir(tmp_path / left[0])
        assert "job.json" in kept and "lock" not in kept, kept


def _children():
    """Process IDs of this process's children."""
    pids = []
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return pids


def test_a_worker_sent_sigterm_hands_its_tile_back(tmp_path_factory):
    import threading
    import shepseg
    rng = numpy.random.default_rng(3)
    noise = write_envi(tmp_path_factory.mktemp("noise") / "noise.img",
                       rng.integers(0, 255, size=(3, 3000, 3000), dtype=numpy.uint8))
    centres = numpy.random.default_rng(2).integers(0, 255, size=(60, 3)).astype(float)
    tmp_path = tmp_path_factory.mktemp("term")
    out = tmp_path / "seg.tif"
    before = set(_children())
    result = {}

    def job():
        # One attempt per tile: a tile lost with the worker would fail the job.
        result["report"] = shepseg.tiled_segment(
            noise, out, tile_size=256, executor="processes", workers=2, model=centres,
            tile_retries=1)

    t = threading.Thread(target=job)
    t.start()
    deadline = time.time() + 30
    while len(set(_children()) - before) < 2:
        assert time.time() < deadline, "no workers started"
        time.sleep(0.05)
    time.sleep(1.0)
    worker = sorted(set(_children()) - before)[0]
    os.kill(worker, signal.SIGTERM)
    t.join(120)
    report = result["report"]
    assert report["workers"]["left"] == 1, report["workers"]
    assert report["workers"]["lost"] == 0, report["workers"]
    same = shepseg.tiled_segment(noise, tmp_path / "seq.tif", tile_size=256,
                                 executor="sequential", model=centres)
    assert same["num_segments"] == report["num_segments"]
    assert (shepseg.read_raster(out) == shepseg.read_raster(tmp_path / "seq.tif")).all()
