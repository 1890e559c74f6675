"""Precompute: every item's and every active user's top-K into the cache, then flip the pointer.

Order of a build: the version's meta and item table, item results (all items with a vector),
user results (most active first: highest total decayed weight), each chunk searched in one FAISS
call and written in one pipeline; then one SET of the pointer key (the atomic switch), and the
previous version's keys get a short TTL (``old_version_grace_s``) so they disappear soon after
readers move on. Every key carries a TTL. ``max_memory_mb`` bounds one version: bytes are
estimated per entry (key + payload + the backend's own overhead, calibrated on the first chunk
with ``MEMORY USAGE``), and when the next chunk would not fit, the build stops writing users
there and reports how many were left out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from tqdm import tqdm

from recserver.ann.cache import ResultCache
from recserver.ann.codec import Keys, encode_items, encode_meta, encode_rows, parse_pointer
from recserver.ann.config import AnnConfig
from recserver.ann.embeddings import interaction_matrix
from recserver.ann.model import AnnModel
from recserver.ann.vectors import query_rows, strongest_per_row
from recserver.graph.snapshot import GraphSnapshot

CHUNK = 1_024  # items per FAISS call
USER_CHUNK = 8_192  # users per round (grouped inside by how many items they have)
DEFAULT_OVERHEAD = 64  # bytes a backend spends per entry beyond key + value, before calibration
SAMPLE = 32

Int64Array = npt.NDArray[np.int64]
Rows = tuple[npt.NDArray[np.int32], npt.NDArray[np.float32], npt.NDArray[np.int64]]


@dataclass
class PrecomputeReport:
    version: int
    index_kind: str
    items_indexed: int
    top_k: int
    vectors: str = "svd"
    items_written: int = 0
    users_eligible: int = 0
    users_written: int = 0
    users_over_cap: int = 0
    key_bytes: int = 0
    payload_bytes: int = 0
    overhead_per_entry: float = float(DEFAULT_OVERHEAD)
    measured_bytes_per_entry: float | None = None
    cap_bytes: int = 0
    previous_version: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def entries(self) -> int:
        return self.items_written + self.users_written

    @property
    def bytes_per_entry(self) -> float:
        """Key + payload + the backend's overhead, averaged."""
        raw = (self.key_bytes + self.payload_bytes) / max(self.entries, 1)
        return raw + self.overhead_per_entry

    @property
    def total_bytes(self) -> int:
        return int(self.bytes_per_entry * self.entries)

    @property
    def users_per_s(self) -> float:
        return self.users_written / max(self.seconds.get("users", 0.0), 1e-9)

    def summary(self) -> str:
        measured = (f"{self.measured_bytes_per_entry:,.0f}" if self.measured_bytes_per_entry
                    else "n/a")
        secs = ", ".join(f"{name} {s:.2f}s" for name, s in self.seconds.items())
        return "\n".join([
            f"version         {self.version} (previous {self.previous_version})",
            f"index           {self.index_kind}, {self.items_indexed:,} items, top_k {self.top_k}, "
            f"vectors from {self.vectors}",
            f"written         {self.items_written:,} items, {self.users_written:,} of "
            f"{self.users_eligible:,} active users ({self.users_over_cap:,} left out by the cap)",
            f"memory          {self.bytes_per_entry:,.0f} bytes/entry (measured {measured}), "
            f"total {self.total_bytes / 2**20:,.1f} MiB of a {self.cap_bytes / 2**20:,.0f} MiB cap",
            f"speed           {self.users_per_s:,.0f} users/s",
            f"time            {secs}",
        ])


def item_chunks(
    model: AnnModel, top_k: int, chunk: int = CHUNK
) -> Iterator[tuple[Int64Array, Rows]]:
    """(item ids, their neighbours without themselves) for every indexed item."""
    rows = model.index.rows.astype(np.int64)
    for start in range(0, rows.shape[0], chunk):
        items = rows[start : start + chunk]
        itself = sp.csr_matrix(
            (np.ones(items.shape[0], np.float32), items.astype(np.int32),
             np.arange(items.shape[0] + 1)), shape=(items.shape[0], model.n_items))
        scores, ids, counts = model.index.search_filtered(model.vectors[items], top_k, itself)
        yield items, (ids, scores, counts)


def active_users(matrix: sp.csr_matrix, cfg: AnnConfig) -> Int64Array:
    """Users with at least ``min_user_items`` items, most active first, at most ``max_users``."""
    counts = np.diff(matrix.indptr)
    weight = np.asarray(matrix.sum(axis=1)).ravel()
    users = np.flatnonzero(counts >= cfg.min_user_items)
    users = users[np.lexsort((users, -weight[users]))]
    return users[: cfg.max_users].astype(np.int64)


def user_chunks(
    model: AnnModel, matrix: sp.csr_matrix, users: Int64Array, cfg: AnnConfig,
    chunk: int = USER_CHUNK,
) -> Iterator[tuple[Int64Array, Rows]]:
    """(user ids, their top-K without the items they have) in chunks."""
    recent = strongest_per_row(matrix, cfg.user_recent_items)
    for start in range(0, users.shape[0], chunk):
        batch = users[start : start + chunk]
        queries = query_rows(recent[batch], model.vectors, model.fold)
        scores, ids, counts = model.index.search_filtered(queries, cfg.top_k, matrix[batch])
        yield batch, (ids, scores, counts)


def write_meta(cache: ResultCache, keys: Keys, model: AnnModel, cfg: AnnConfig) -> None:
    meta = {"version": model.version, "top_k": cfg.top_k, "dim": int(model.vectors.shape[1]),
            "items": model.n_items, "index": model.index.kind, "source": model.source,
            "snapshot_version": model.snapshot_version, "created_at": time.time()}
    cache.put_many([(keys.meta, encode_meta(meta)), (keys.items, encode_items(model.item_names))],
                   cfg.ttl_s)


def flip(cache: ResultCache, keys: Keys, version: int, cfg: AnnConfig) -> int | None:
    """Point readers at ``version`` (one SET); the previous version expires soon. Returns it."""
    previous = parse_pointer(cache.get(keys.pointer, cfg.build_timeout_s))
    cache.put_many([(keys.pointer, str(version).encode())], cfg.ttl_s)
    if previous is not None and previous != version:
        cache.expire_namespace(keys.at(previous).namespace, cfg.old_version_grace_s)
    return previous


class _Writer:
    """Writes chunks of payloads, keeps the byte account, and stops at the cap."""

    def __init__(self, cache: ResultCache, report: PrecomputeReport, ttl_s: int, bar: tqdm) -> None:
        self.cache, self.report, self.ttl_s, self.bar = cache, report, ttl_s, bar
        self.calibrated = False

    def write(self, keys: list[bytes], payloads: list[bytes]) -> int:
        """Write as many as fit under the cap; returns how many were written."""
        report = self.report
        sizes = np.fromiter((len(k) + len(p) for k, p in zip(keys, payloads, strict=True)),
                            dtype=np.int64, count=len(keys))
        used = report.key_bytes + report.payload_bytes + report.overhead_per_entry * report.entries
        cumulative = used + np.cumsum(sizes + report.overhead_per_entry)
        fit = int(np.searchsorted(cumulative, report.cap_bytes, side="right"))
        if fit:
            self.cache.put_many(zip(keys[:fit], payloads[:fit], strict=True), self.ttl_s)
            report.key_bytes += sum(len(k) for k in keys[:fit])
            report.payload_bytes += sum(len(p) for p in payloads[:fit])
            self.bar.update(fit)
        if fit and not self.calibrated:
            self._calibrate(keys[: min(fit, SAMPLE)], int(sizes[: min(fit, SAMPLE)].sum()))
        return fit

    def _calibrate(self, sample: list[bytes], raw: int) -> None:
        measured = self.cache.memory_usage(sample)
        self.calibrated = True
        if measured:
            self.report.measured_bytes_per_entry = measured / len(sample)
            self.report.overhead_per_entry = max(0.0, (measured - raw) / len(sample))


def cap_mb(cfg: AnnConfig, cache: ResultCache) -> float:
    """The memory cap of a build: the in-process cache never takes more than its own size."""
    if cache.backend in ("redis", "file"):  # shared stores: the configured cap
        return cfg.max_memory_mb
    return min(cfg.max_memory_mb, cfg.lru_max_mb)


def publish(
    model: AnnModel, snapshot: GraphSnapshot, cache: ResultCache, cfg: AnnConfig, *,
    progress: bool = False,
) -> PrecomputeReport:
    """Write ``model``'s results for ``snapshot`` under its version and flip the pointer."""
    return switch_on(stage(model, snapshot, cache, cfg, progress=progress), cache, cfg)


def switch_on(report: PrecomputeReport, cache: ResultCache, cfg: AnnConfig) -> PrecomputeReport:
    """Flip the pointer to the staged version of ``report`` (readers move to it)."""
    flipped = time.perf_counter()
    keys = Keys(cfg.key_prefix, report.version)
    report.previous_version = flip(cache, keys, report.version, cfg)
    report.seconds["flip"] = time.perf_counter() - flipped
    return report


def stage(
    model: AnnModel, snapshot: GraphSnapshot, cache: ResultCache, cfg: AnnConfig, *,
    progress: bool = False,
) -> PrecomputeReport:
    """Write ``model``'s results for ``snapshot`` under its version; nobody reads them until
    ``switch_on`` (an ANN build child stages, then waits for the builder's go)."""
    keys = Keys(cfg.key_prefix, model.version)
    report = PrecomputeReport(version=model.version, index_kind=model.index.kind,
                              items_indexed=model.index.size, top_k=cfg.top_k,
                              vectors=model.source,
                              cap_bytes=int(cap_mb(cfg, cache) * 2**20),
                              seconds=dict(model.seconds))
    started = time.perf_counter()
    write_meta(cache, keys, model, cfg)
    matrix = interaction_matrix(snapshot)
    users = active_users(matrix, cfg)
    report.users_eligible = int(users.shape[0])
    base = keys.namespace
    with tqdm(total=model.index.size + users.shape[0], unit="key", desc="ann precompute",
              disable=not progress, mininterval=0.5) as bar:
        writer = _Writer(cache, report, cfg.ttl_s, bar)
        full = True
        for items, (ids, scores, counts) in item_chunks(model, cfg.top_k):
            names = model.item_names
            item_keys = [base + b"i:" + names[i].encode() for i in items.tolist()]
            written = writer.write(item_keys, encode_rows(model.version, ids, scores, counts))
            report.items_written += written
            if written < len(item_keys):
                full = False
                break
        items_done = time.perf_counter()
        report.seconds["items"] = items_done - started
        if full:
            for batch, (ids, scores, counts) in user_chunks(model, matrix, users, cfg):
                user_names = snapshot.users.names(batch.tolist())
                user_keys = [base + b"u:" + name.encode() for name in user_names]
                written = writer.write(user_keys, encode_rows(model.version, ids, scores, counts))
                report.users_written += written
                if written < len(user_keys):
                    break
        report.users_over_cap = report.users_eligible - report.users_written
        report.seconds["users"] = time.perf_counter() - items_done
    return report
