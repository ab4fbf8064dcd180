"""pyshepseg's ``subset`` module: ``subsetImage``."""

import shepseg as _native

from ._warn import warn_once


class PyShepSegSubsetError(_native.ShepsegError):
    """pyshepseg's subset error (a ShepsegError)."""


def subsetImage(inname, outname, tlx, tly, newXsize, newYsize, outformat,
                creationOptions=[], origSegIdColName=None, maskImage=None,
                pyshepseg_compat=False):
    """Writes the (newXsize x newYsize) window at column ``tlx``, row ``tly`` of the
    segmentation ``inname`` (a path, or an open gdal.Dataset) to ``outname``, renumbered with
    its attribute table; ``maskImage`` (matching the subset) leaves out its zero pixels.
    pyshepseg's arguments; the result is the same in both modes."""
    del pyshepseg_compat  # one behaviour
    if hasattr(inname, "GetDescription"):
        inname.FlushCache()
        inname = inname.GetDescription()
    if outformat == "KEA" and not _native._shepseg.gdal_driver_available("KEA"):
        warn_once("kea-subset", "this GDAL has no KEA driver: writing HFA instead")
        outformat = "HFA"
    info = _native.raster_info(inname)
    cols, rows = info["size"]
    if tlx + newXsize > cols or tly + newYsize > rows:
        raise PyShepSegSubsetError("Requested subset is not within input image")
    want = (int(tlx), int(tly), int(newXsize), int(newYsize))
    if maskImage is not None:
        r = _native.subset(inname, outname, mask=maskImage, orig_id_column=origSegIdColName,
                           driver=outformat, creation_options=list(creationOptions),
                           overwrite=True)
        if tuple(r["window"]) != want:
            raise PyShepSegSubsetError(
                f"maskImage covers window {tuple(r['window'])}, not the subset {want}")
        return
    _native.subset(inname, outname, srcwin=want, orig_id_column=origSegIdColName,
                   driver=outformat, creation_options=list(creationOptions), overwrite=True)
