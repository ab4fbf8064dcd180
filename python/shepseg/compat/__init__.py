"""pyshepseg's API on shepseg: change ``from pyshepseg import shepseg, tiling, tilingstats,
subset`` to ``from shepseg.compat import shepseg, tiling, tilingstats, subset`` and a script
runs as before.

Every function takes pyshepseg's arguments, with its names and defaults, and returns objects
with its result attributes. By default they run shepseg's default mode, which fixes
pyshepseg's defects and whose tiled result does not depend on the tiling (so ``overlapSize``
is not needed and ignored); results can then differ from pyshepseg's, which a warning says
once. ``pyshepseg_compat=True`` on any of them reproduces pyshepseg bit for bit.
"""

import warnings

from . import shepseg, subset, tiling, tilingstats  # noqa: F401

__all__ = ["shepseg", "tiling", "tilingstats", "subset"]

_warned = set()


def warn_once(key: str, message: str) -> None:
    """Issues ``message`` as a UserWarning the first time ``key`` is seen in this process."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, UserWarning, stacklevel=3)


def warn_mode(pyshepseg_compat: bool) -> None:
    """Says once that the default mode's results can differ from pyshepseg's."""
    if not pyshepseg_compat:
        warn_once("mode", "shepseg.compat runs shepseg's default mode: results can differ from "
                  "pyshepseg's (pass pyshepseg_compat=True to reproduce them exactly)")
