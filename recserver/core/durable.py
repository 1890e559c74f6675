"""Durable writes: fsync a file or a folder, and replace a file atomically.

A rename is only durable once the folder holding it is fsynced; a file's bytes only once the
file is. Snapshots, manifests, checkpoints and the file event log all rely on these three.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:  # numpy is imported where arrays are written: the node supervisor reads
    import numpy as np  # and writes JSON only, and holds no numpy


def fsync_path(path: Path | str) -> None:
    """fsync a file or a folder by path (a folder: so the renames inside it survive a crash)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_array(path: Path, array: np.ndarray, *, fsync: bool = True) -> None:
    """Write ``array`` as a ``.npy`` file (no pickles); ``fsync``: on disk before returning.

    The bytes go through Python's own file write rather than ``np.save``: numpy writes real
    files with ``tofile``, which reports a full disk as a bare "N requested and M written"
    with no errno, so callers could not tell the operator the disk is full.
    """
    with open(path, "wb") as fh:
        write_array(fh, array)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


def write_array(fh: BinaryIO, array: np.ndarray) -> None:
    """``.npy`` bytes of ``array`` into an open file; a short write raises with its errno."""
    import numpy as np

    data = np.asarray(array, order="C")  # keeps 0-d arrays 0-d, unlike ascontiguousarray
    if data.dtype.hasobject:
        raise ValueError("object arrays are not saved (they would need pickles)")
    np.lib.format.write_array_header_2_0(fh, np.lib.format.header_data_from_array_1_0(data))
    fh.write(data.reshape(-1).data.cast("B"))


def write_json_atomic(path: Path, payload: dict[str, Any], *, fsync: bool = True) -> None:
    """Replace ``path`` with ``payload`` in one rename: readers see the old or the new file.
    ``fsync=False``: atomic for readers, not durable (a file rewritten at every start)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(payload, fh, indent=1)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object at ``path``, or None when it is missing or half-written."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
