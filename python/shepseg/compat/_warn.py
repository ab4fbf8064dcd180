"""The compat layer's warnings, each given once per process."""

import warnings

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
