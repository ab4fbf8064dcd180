"""pyshepseg's API on shepseg: change ``from pyshepseg import shepseg, tiling, tilingstats,
subset`` to ``from shepseg.compat import shepseg, tiling, tilingstats, subset`` and a script
runs as before.

Every function takes pyshepseg's arguments, with its names and defaults, and returns objects
with its result attributes. By default they run shepseg's default mode, which fixes
pyshepseg's defects and whose tiled result does not depend on the tiling (so ``overlapSize``
is not needed and ignored); results can then differ from pyshepseg's, which a warning says
once. ``pyshepseg_compat=True`` on any of them reproduces pyshepseg bit for bit.
"""

from . import shepseg, subset, tiling, tilingstats  # noqa: F401
from ._warn import _warned, warn_mode, warn_once  # noqa: F401

__all__ = ["shepseg", "tiling", "tilingstats", "subset"]
