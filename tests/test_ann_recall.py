"""Embeddings and the FAISS index: recall@k of HNSW and IVF against exact search.

Random vectors give misleadingly low recall (no structure to find), so the synthetic case uses
clustered vectors, and the real case embeds the UCI Online Retail purchase log with the same
randomized SVD the server uses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recserver.ann.blas import limit_blas_threads
from recserver.ann.config import AnnEmbeddingConfig, AnnIndexConfig
from recserver.ann.embeddings import (
    interaction_matrix,
    learn_item_vectors,
    load_item_vectors,
    unit_rows,
)
from recserver.ann.index import build_index, choose_kind, exact_search, recall_at_k, set_threads
from recserver.ann.vectors import user_matrix, user_vector, user_vectors
from recserver.graph.config import GraphConfig
from recserver.graph.live import LiveGraph
from recserver.graph.loaders import load_events
from tests.ann_helpers import synthetic_live

RETAIL = (Path(__file__).resolve().parents[2] / "shared" / "data" / "online_retail"
          / "uci_online_retail_purchases.csv.gz")
K = 20
MIN_RECALL = 0.95


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> None:
    set_threads(1)
    limit_blas_threads(1)


def clustered(n: int, dim: int, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim))
    data = unit_rows(centers[rng.integers(0, clusters, n)] + rng.standard_normal((n, dim)))
    queries = unit_rows(centers[rng.integers(0, clusters, 300)]
                        + rng.standard_normal((300, dim)))
    return data, queries


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_recall_on_synthetic_clustered_vectors(kind: str) -> None:
    data, queries = clustered(10_000, 32, 100, seed=1)
    index = build_index(data, AnnIndexConfig(kind=kind))
    assert index.kind == kind and index.size == 10_000
    _, exact = exact_search(data, queries, K)
    _, found = index.search(queries, K)
    assert recall_at_k(found, exact) >= MIN_RECALL


@pytest.fixture(scope="module")
def retail() -> LiveGraph:
    if not RETAIL.exists():
        pytest.skip(f"the real purchase log is absent ({RETAIL}); ../shared is not checked out")
    cfg = GraphConfig()
    live = LiveGraph(cfg)
    live.ingest(load_events(RETAIL, cfg.event_weights))
    live.publish(compact=True)
    return live


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_recall_on_the_real_purchase_log(retail: LiveGraph, kind: str) -> None:
    snap = retail.current
    vectors = learn_item_vectors(snap, AnnEmbeddingConfig(dim=64)).vectors
    index = build_index(vectors, AnnIndexConfig(kind=kind))
    assert index.size > 3_000  # every item with a purchase has a vector
    # Queries as served: user vectors (recent, weighted) and item vectors.
    matrix = user_matrix(snap, 50)
    users = np.flatnonzero(np.diff(matrix.indptr) > 0)[:400]
    queries = np.vstack([user_vectors(matrix, vectors, users), vectors[index.rows[:400]]])
    _, exact = exact_search(vectors, queries, K)
    _, found = index.search(queries, K)
    assert recall_at_k(found, exact) >= MIN_RECALL


def test_learned_vectors_are_unit_and_put_co_bought_items_near(retail: LiveGraph) -> None:
    snap = retail.current
    vectors = learn_item_vectors(snap, AnnEmbeddingConfig(dim=32)).vectors
    norms = np.linalg.norm(vectors, axis=1)
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-4)
    # An item's nearest neighbours share far more buyers than random items do.
    matrix = (interaction_matrix(snap) > 0).astype(np.float32).T.tocsr()  # items x users
    index = build_index(vectors, AnnIndexConfig(kind="flat"))
    rng = np.random.default_rng(0)
    probes = rng.choice(index.rows, 200, replace=False)
    _, near = index.search(vectors[probes], 6)
    shared_near = np.mean([matrix[p].multiply(matrix[n]).sum()
                           for p, row in zip(probes, near, strict=True) for n in row[1:]])
    random_items = rng.choice(index.rows, (200, 5))
    shared_random = np.mean([matrix[p].multiply(matrix[n]).sum()
                             for p, row in zip(probes, random_items, strict=True) for n in row])
    assert shared_near > 3 * shared_random


def test_user_vector_single_and_batch_agree() -> None:
    live = synthetic_live()
    snap = live.current
    vectors = learn_item_vectors(snap, AnnEmbeddingConfig(dim=16)).vectors
    matrix = user_matrix(snap, 5)
    users = np.arange(min(50, snap.n_users))
    batch = user_vectors(matrix, vectors, users)
    for row, user in enumerate(users.tolist()):
        single, seen = user_vector(snap, vectors, user, 5)
        assert np.allclose(single, batch[row], atol=1e-4)
        assert set(seen.tolist()) == set(snap.user_items(user)[0].tolist())


def test_index_kind_follows_catalogue_size() -> None:
    cfg = AnnIndexConfig(flat_max_items=100, ivf_min_items=1_000)
    assert [choose_kind(n, cfg) for n in (50, 100, 101, 999, 1_000)] == [
        "flat", "flat", "hnsw", "hnsw", "ivf"]
    assert choose_kind(10, AnnIndexConfig(kind="ivf")) == "ivf"
    tiny = build_index(np.eye(3, dtype=np.float32), AnnIndexConfig(kind="ivf"))
    assert tiny.search(np.eye(3, dtype=np.float32), 1)[1].ravel().tolist() == [0, 1, 2]


def test_vectors_load_from_a_npy_file_with_an_id_file(tmp_path: Path) -> None:
    live = synthetic_live()
    snap = live.current
    names = [snap.items.name(i) for i in (2, 0)] + ["not-in-the-graph"]
    np.save(tmp_path / "v.npy", np.array([[0, 2], [3, 0], [1, 1]], np.float32))
    (tmp_path / "ids.txt").write_text("\n".join(names) + "\n")
    loaded = load_item_vectors(snap, tmp_path / "v.npy", tmp_path / "ids.txt")
    assert loaded.vectors.shape == (snap.n_items, 2)
    assert loaded.vectors[2].tolist() == [0.0, 1.0] and loaded.vectors[0].tolist() == [1.0, 0.0]
    assert not loaded.vectors[1].any()  # no row for it: left out of the index
    (tmp_path / "ids.txt").write_text("only-one\n")
    with pytest.raises(ValueError, match="one row per id"):
        load_item_vectors(snap, tmp_path / "v.npy", tmp_path / "ids.txt")


def test_filtered_search_drops_banned_items_and_matches_brute_force() -> None:
    from recserver.ann.index import banned_rows

    data, queries = clustered(2_000, 16, 20, seed=3)
    index = build_index(data, AnnIndexConfig(kind="flat"))
    rng = np.random.default_rng(4)
    # Ban lists of very different lengths, so rows land in different (and merged) groups.
    lengths = rng.choice([0, 3, 20, 40, 100, 300], size=queries.shape[0])
    bans = [rng.choice(2_000, n, replace=False).astype(np.int32) for n in lengths]
    scores, ids, counts = index.search_filtered(queries, 10, banned_rows(bans, 2_000))
    brute = queries @ data.T
    for row, ban in enumerate(bans):
        brute[row, ban] = -np.inf
        want = np.argsort(-brute[row], kind="stable")[:10]
        assert counts[row] == 10
        assert set(ids[row].tolist()) == set(want.tolist())
        assert not set(ban.tolist()) & set(ids[row].tolist())
        assert np.all(np.diff(scores[row]) <= 1e-6)
