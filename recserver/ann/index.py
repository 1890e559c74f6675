"""The FAISS index over unit item vectors (inner product = cosine), chosen by catalogue size.

``Flat`` is exact and fastest to build; it stays the choice up to ``flat_max_items``. Above it
HNSW (graph search, no training) serves, and IVF (k-means lists, cheaper memory and build on
very large catalogues) from ``ivf_min_items``. Only items with a non-zero vector are indexed;
``rows`` maps an index row back to the item id.

FAISS runs OpenMP threads; a single query is as fast on one thread as on two, so serving
threads call ``single_thread()`` once (the setting is per calling thread).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import faiss
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from recserver.ann.config import AnnIndexConfig

Float32Array = npt.NDArray[np.float32]
Int32Array = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]

_local = threading.local()
MAX_BANNED_EXTRA = 512  # candidates searched beyond k to make room for banned items
MIN_GROUP = 64  # FAISS batches (BLAS) from ~20 queries on; fewer go one by one, slowly


def single_thread() -> None:
    """One OpenMP thread for FAISS calls made from this thread (a no-op after the first call)."""
    if not getattr(_local, "single", False):
        faiss.omp_set_num_threads(1)
        _local.single = True


def set_threads(n: int) -> None:
    faiss.omp_set_num_threads(n)
    _local.single = n == 1


def choose_kind(n_items: int, cfg: AnnIndexConfig) -> str:
    if cfg.kind != "auto":
        return cfg.kind
    if n_items <= cfg.flat_max_items:
        return "flat"
    return "ivf" if n_items >= cfg.ivf_min_items else "hnsw"


@dataclass(frozen=True)
class AnnIndex:
    """A built index and the item id of each of its rows."""

    index: faiss.Index
    rows: Int32Array  # index row -> item id
    kind: str
    dim: int

    @property
    def size(self) -> int:
        return int(self.rows.shape[0])

    def search(self, queries: Float32Array, k: int) -> tuple[Float32Array, Int32Array]:
        """Top-``k`` (scores, item ids) per query row; missing places are id -1, score -inf."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        k_eff = max(1, min(k, self.size))
        if self.size == 0:
            n = queries.shape[0]
            return np.full((n, 0), -np.inf, np.float32), np.full((n, 0), -1, np.int32)
        scores, found = self.index.search(queries, k_eff)
        ids = np.where(found >= 0, self.rows[np.maximum(found, 0)], -1).astype(np.int32)
        return np.where(found >= 0, scores, -np.inf).astype(np.float32), ids

    def search_filtered(
        self, queries: Float32Array, k: int, banned: sp.csr_matrix
    ) -> tuple[Float32Array, Int32Array, Int64Array]:
        """Top-``k`` per row without the items of ``banned``'s row (CSR, item-id columns).

        Returns (scores, ids, counts): row ``r`` holds ``counts[r]`` results, best first. Each
        row asks the index for ``k`` plus room for its ban list (rows are grouped by the next
        power of two of that length, at most ``MAX_BANNED_EXTRA``: a large k makes every query
        slower, and most rows ban few items); banned items are dropped, so a row banning more
        than ``MAX_BANNED_EXTRA`` of its nearest items may come back shorter.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        n = queries.shape[0]
        lengths = np.diff(banned.indptr)
        room = np.minimum(2 ** np.ceil(np.log2(np.maximum(lengths, 16))), MAX_BANNED_EXTRA)
        out_scores = np.full((n, k), -np.inf, np.float32)
        out_ids = np.full((n, k), -1, np.int32)
        counts = np.zeros(n, np.int64)
        buckets = np.unique(room).tolist()
        carried = np.empty(0, np.int64)
        for position, extra in enumerate(buckets):
            rows = np.concatenate([carried, np.flatnonzero(room == extra)])
            if rows.shape[0] < MIN_GROUP and position < len(buckets) - 1:
                carried = rows  # a handful of queries: search them with the next, larger group
                continue
            carried = np.empty(0, np.int64)
            scores, ids = self.search(queries[rows], k + int(extra))
            top, top_ids, got = _first_allowed(scores, ids, banned_mask(ids, banned[rows]), k)
            width = top.shape[1]
            out_scores[rows, :width], out_ids[rows, :width], counts[rows] = top, top_ids, got
        return out_scores, out_ids, counts


def banned_mask(ids: Int32Array, banned: sp.csr_matrix) -> npt.NDArray[np.bool_]:
    """``ids[r, j]`` is in row ``r`` of ``banned`` (CSR with sorted indices)."""
    n_cols = max(banned.shape[1], 1)
    counts = np.diff(banned.indptr)
    keys = np.repeat(np.arange(banned.shape[0], dtype=np.int64), counts) * n_cols + banned.indices
    if keys.shape[0] == 0:
        return np.zeros(ids.shape, dtype=bool)
    keys.sort()
    cand = np.arange(ids.shape[0], dtype=np.int64)[:, None] * n_cols + np.maximum(ids, 0)
    pos = np.minimum(np.searchsorted(keys, cand), keys.shape[0] - 1)
    return keys[pos] == cand


def _first_allowed(
    scores: Float32Array, ids: Int32Array, banned: npt.NDArray[np.bool_], k: int
) -> tuple[Float32Array, Int32Array, Int64Array]:
    banned = banned | (ids < 0)
    order = np.argsort(banned, axis=1, kind="stable")[:, :k]
    counts = np.minimum((~banned).sum(axis=1), k).astype(np.int64)
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1), counts


def banned_rows(rows: list[Int32Array], n_items: int) -> sp.csr_matrix:
    """A CSR ban list from one id array per query row."""
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([r.shape[0] for r in rows], out=indptr[1:])
    indices = np.concatenate(rows).astype(np.int32) if rows else np.empty(0, np.int32)
    data = np.ones(indices.shape[0], dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(len(rows), max(n_items, 1)))


def build_index(vectors: Float32Array, cfg: AnnIndexConfig, *, seed: int = 0) -> AnnIndex:
    """Index the non-zero rows of ``vectors`` (row number = item id)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = int(vectors.shape[1])
    rows = np.flatnonzero(np.any(vectors != 0, axis=1)).astype(np.int32)
    data = vectors[rows]
    kind = choose_kind(rows.shape[0], cfg)
    index: faiss.Index
    if kind == "flat" or rows.shape[0] == 0:
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.hnsw_ef_construction
        index.hnsw.efSearch = cfg.hnsw_ef_search
    else:
        n = rows.shape[0]
        nlist = cfg.ivf_nlist or int(4 * math.sqrt(n))
        nlist = max(1, min(nlist, n // 39 or 1))  # FAISS wants ~39 training points per list
        quantizer = faiss.IndexFlatIP(dim)
        ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.cp.seed = seed
        ivf.train(data)
        ivf.nprobe = min(cfg.ivf_nprobe, nlist)
        index = ivf  # the Python wrapper keeps ``quantizer`` alive with the index
    if rows.shape[0]:
        index.add(data)
    return AnnIndex(index=index, rows=rows, kind=kind, dim=dim)


def exact_search(
    vectors: Float32Array, queries: Float32Array, k: int
) -> tuple[Float32Array, Int32Array]:
    """Brute-force top-``k`` over the non-zero rows (the reference for recall)."""
    flat = build_index(vectors, AnnIndexConfig(kind="flat"))
    return flat.search(queries, k)


def recall_at_k(found: Int32Array, exact: Int32Array) -> float:
    """Mean share of each row's exact top-k that ``found`` also returned."""
    hits = total = 0
    for got, want in zip(found, exact, strict=True):
        want_set = set(want[want >= 0].tolist())
        total += len(want_set)
        hits += len(want_set & set(got.tolist()))
    return hits / total if total else 1.0
