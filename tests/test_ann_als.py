"""ALS vectors for the ANN tier: the fold-in, batch and single user vectors, and the tier's
answers against the SVD vectors on the same graph."""

from __future__ import annotations

import numpy as np

from recserver.ann.config import AnnEmbeddingConfig
from recserver.ann.embeddings import item_vectors
from recserver.ann.model import build_model
from recserver.ann.vectors import user_matrix, user_vector, user_vectors
from recserver.graph.config import GraphConfig
from recserver.graph.events import Event, EventColumns
from recserver.graph.live import LiveGraph
from tests.ann_helpers import ann_config, synthetic_live


def test_als_user_vectors_single_and_batch_agree() -> None:
    snap = synthetic_live().current
    vectors = item_vectors(snap, AnnEmbeddingConfig(method="als", dim=16))
    assert vectors.source == "als" and vectors.fold is not None
    matrix = user_matrix(snap, 5)
    users = np.arange(min(40, snap.n_users))
    batch = user_vectors(matrix, vectors.vectors, users, vectors.fold)
    for row, user in enumerate(users.tolist()):
        single, seen = user_vector(snap, vectors.vectors, user, 5, vectors.fold)
        assert np.allclose(single, batch[row], atol=1e-4)
        assert set(seen.tolist()) == set(snap.user_items(user)[0].tolist())


def block_graph() -> LiveGraph:
    """Two groups of 30 users, each buying from its own 6 items; u0 lacks item a2."""
    events = []
    for u in range(60):
        group = "a" if u < 30 else "b"
        for i in range(6):
            if not (u == 0 and i == 2):
                events.append(Event(f"u{u}", f"{group}{i}", "purchase", 1.0, 1.7e9 + u))
    live = LiveGraph(GraphConfig())
    live.ingest(EventColumns.from_events(events))
    live.publish(compact=True)
    return live


def test_als_ann_model_recommends_inside_the_users_group() -> None:
    snap = block_graph().current
    model = build_model(snap, ann_config(embeddings={"dim": 4, "method": "als"}), version=1)
    assert model.source == "als" and model.fold is not None
    u0 = snap.users.get("u0")
    assert u0 is not None
    vector, seen = user_vector(snap, model.vectors, u0, 50, model.fold)
    scores = model.vectors @ vector
    scores[seen] = -np.inf
    assert snap.items.names([int(np.argmax(scores))]) == ["a2"]
    # SVD vectors stay available (method: svd), without a fold-in.
    svd = build_model(snap, ann_config(embeddings={"dim": 4, "method": "svd"}), version=2)
    assert svd.source == "svd" and svd.fold is None
