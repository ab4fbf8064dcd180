"""``python -m shepseg worker --connect HOST:PORT``: a tile worker for ``tiled_segment(...,
executor='processes')``, which starts these itself."""

import argparse
import os
import signal
import socket
import sys

from . import ShepsegError, _shepseg


def main(argv=None) -> int:
    """Runs the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m shepseg")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="segment tiles for a coordinator")
    w.add_argument("--connect", required=True, help="HOST:PORT of the coordinator")
    w.add_argument("--name", help="name in the coordinator's log")
    w.add_argument("--connect-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    name = args.name or f"{socket.gethostname()}:{os.getpid()}"
    # SIGTERM (a stopping container, a scale-in) and SIGHUP end the worker as Ctrl-C does:
    # it tells the coordinator it is leaving, handing its tile back, and exits 0.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _leave)
    try:
        _shepseg.run_worker(args.connect, name, args.connect_timeout)
    except ShepsegError as e:
        print(f"shepseg worker: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"shepseg worker {name}: stopped by a signal; its tile handed back",
              file=sys.stderr, flush=True)
        # The abandoned tile thread may be inside GDAL: end without the exit-time teardown.
        os._exit(0)
    return 0


def _leave(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
