"""What a data directory was built from: ``DATA_DIR/source.json``, checked before every start.

Only a first bootstrap (no checkpoint yet) loads ``--events`` or the synthetic log, and the
``--items`` file; every restart restores the newest checkpoint instead. So a later ``serve
--events other.csv`` over that data directory would serve the old graph. The first bootstrap
records its source here (``record``), and ``serve`` compares the source it is asked for with
the record before it starts any process (``check``): a different one stops with a message
naming both and the ways out; none given serves the record's, saying so.

An event or items file is known by its size and a SHA-256 of its first and last MiB, not by its
path (a file moved or a relative path from another directory is the same data) nor its mtime (a
copy, a checkout or an rsync without ``-t`` changes it, not the data: a false refusal). Not a
hash of the whole file either: a restart reads none of the file, and hashing a multi-GB log at
every start would delay the supervisor's answer by seconds. What this misses, an edit inside
the file that keeps its size and both ends, is not how event logs change (they grow).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recserver.core.durable import read_json, write_json_atomic
from recserver.graph.synthetic_spec import parse_synthetic

log = logging.getLogger(__name__)

FILE_NAME = "source.json"
#: Bytes hashed at each end of a file: enough to tell two event logs apart, cheap at any size.
END_BYTES = 1 << 20
#: The generator's seed at a bootstrap (``graph.bootstrap.load_into``'s default).
SEED = 0


def file_fingerprint(path: Path) -> dict[str, Any]:
    """An event or items file's identity: its absolute path (for messages), size and hash."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        digest.update(fh.read(END_BYTES))
        if size > END_BYTES:
            fh.seek(max(END_BYTES, size - END_BYTES))
            digest.update(fh.read(END_BYTES))
    return {"path": str(path.absolute()), "size": size, "ends_sha256": digest.hexdigest()}


def describe(events: Path | None, synthetic: str | None, items: Path | None) -> dict[str, Any]:
    """The source a bootstrap with these options loads (the default: synthetic ``medium``)."""
    out: dict[str, Any]
    if events is not None:
        out = {"events": file_fingerprint(events)}
    else:
        out = {"synthetic": parse_synthetic(synthetic, "medium").label, "seed": SEED}
    out["items"] = file_fingerprint(items) if items is not None else None
    return out


def _same_file(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a["size"], a["ends_sha256"]) == (b["size"], b["ends_sha256"])


def _graph_source(source: dict[str, Any]) -> str:
    if source.get("events"):
        ev = source["events"]
        return f"events file {ev['path']} ({ev['size']:,} bytes)"
    return f"{source.get('synthetic', '?')} (seed {source.get('seed', SEED)})"


def _items_source(source: dict[str, Any]) -> str:
    items = source.get("items")
    return f"items file {items['path']} ({items['size']:,} bytes)" if items else "no items file"


def summary(source: dict[str, Any]) -> str:
    """A source in words: ``events file /x.csv (1,234 bytes)``, ``synthetic:5000 (seed 0)``,
    with its items file when it had one."""
    out = _graph_source(source)
    return out + (f" with {_items_source(source)}" if source.get("items") else "")


class SourceMismatch(ValueError):
    """``serve`` was asked for another source than the one its data directory was built from."""


def read(data_dir: Path) -> dict[str, Any] | None:
    """The recorded source of ``data_dir`` (None: never bootstrapped, or from before records)."""
    return read_json(data_dir / FILE_NAME)


def record(data_dir: Path, source: dict[str, Any]) -> None:
    """Write ``source`` as ``data_dir``'s, durably, before the first checkpoint can exist."""
    data_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(data_dir / FILE_NAME, source)
    log.info("data dir %s: built from %s", data_dir, summary(source))


@dataclass(frozen=True)
class Requested:
    """The source options of one start (``--events``/``--synthetic``, ``--items``)."""

    events: Path | None = None
    synthetic: str | None = None
    items: Path | None = None

    @property
    def names_graph(self) -> bool:
        return self.events is not None or self.synthetic is not None


def check(data_dir: Path, asked: Requested, *, reset_flag: str = "--reset-data-dir") -> str:
    """What a start with ``asked`` serves from ``data_dir`` when ``asked`` leaves the source to
    the record, in words; "" when it names the recorded source, or the directory has no record
    (a first bootstrap, or a directory from before records: restored as it is).

    Raises ``SourceMismatch`` naming both sources and the fixes when ``asked`` names another
    graph source or items file than the record's. A source not given is the record's."""
    recorded = read(data_dir)
    if recorded is None:
        return ""
    wanted = describe(asked.events, asked.synthetic, asked.items)
    problems = []
    if asked.names_graph and (
            not _same_file(wanted.get("events"), recorded.get("events"))
            or wanted.get("synthetic") != recorded.get("synthetic")):
        problems.append(f"asked for {_graph_source(wanted)}, but it was built from "
                        f"{_graph_source(recorded)}")
    if asked.items is not None and not _same_file(wanted["items"], recorded.get("items")):
        problems.append(f"asked for {_items_source(wanted)}, but it was built with "
                        f"{_items_source(recorded)}")
    if problems:
        raise SourceMismatch(
            f"data dir {data_dir}: {'; '.join(problems)}. A data dir restores the graph it "
            f"holds (its checkpoints and event log), never a new source. Choose another "
            f"directory with --data-dir, or pass {reset_flag} to delete this one's "
            "checkpoints, event log and snapshots and build from the new source")
    missing = [] if asked.names_graph else ["--events or --synthetic"]
    missing += [] if asked.items is not None or not recorded.get("items") else ["--items"]
    if not missing:
        return ""  # the same source: restored as it is, nothing to point out
    return (f"data dir {data_dir} holds the graph built from {summary(recorded)}; serving it "
            f"(no {' or '.join(missing)} given)")


def reset(data_dir: Path, log_dir: Path, checkpoint_dir: Path, run_dir: Path) -> list[Path]:
    """Delete what a data directory was built into: its checkpoints, the file event log's
    segments, the snapshots and the record; returns what it deleted. The erasure ledger in the
    log's directory stays (erased users must stay erased, whatever the next source holds)."""
    import shutil

    gone: list[Path] = []
    for path in (checkpoint_dir, run_dir):
        if path.is_dir():
            shutil.rmtree(path)
            gone.append(path)
    if log_dir.is_dir():
        for segment in sorted(log_dir.glob("*.seg")):
            segment.unlink()
            gone.append(segment)
    if (data_dir / FILE_NAME).exists():
        os.unlink(data_dir / FILE_NAME)
        gone.append(data_dir / FILE_NAME)
    return gone
