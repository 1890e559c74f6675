"""One build's in-process artefacts: item vectors, the index, and the build's item names."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from recserver.ann.als import FoldIn
from recserver.ann.config import AnnConfig
from recserver.ann.embeddings import item_vectors
from recserver.ann.index import AnnIndex, build_index
from recserver.graph.snapshot import GraphSnapshot

Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class AnnModel:
    """Vectors and index of one build. Build item ids are the snapshot's internal item ids."""

    version: int
    vectors: Float32Array  # [n_items at build, dim], unit or zero rows
    index: AnnIndex
    item_names: list[str]  # build id -> external item id
    snapshot_version: int
    source: str
    seconds: dict[str, float] = field(default_factory=dict)
    fold: FoldIn | None = None  # ALS vectors: user vectors are solved from the user's items
    #: items the build learned vectors for; ids from here on were folded in after it
    #: (``ann.fold_new``), or are waiting for users; None: no item was folded in
    built_items: int | None = None

    @property
    def n_items(self) -> int:
        return int(self.vectors.shape[0])


def new_version(previous: int | None = None) -> int:
    """A build version: milliseconds since the epoch, and always above ``previous``."""
    now = int(time.time() * 1000)
    return now if previous is None else max(now, previous + 1)


def build_model(snapshot: GraphSnapshot, cfg: AnnConfig, version: int) -> AnnModel:
    """Learn (or load) the item vectors of ``snapshot`` and index them."""
    started = time.perf_counter()
    vectors = item_vectors(snapshot, cfg.embeddings, threads=cfg.build_threads)
    embedded = time.perf_counter()
    index = build_index(vectors.vectors, cfg.index, seed=cfg.embeddings.seed)
    indexed = time.perf_counter()
    return AnnModel(
        version=version,
        vectors=vectors.vectors,
        index=index,
        item_names=snapshot.items.names(range(snapshot.n_items)),
        snapshot_version=snapshot.version,
        source=vectors.source,
        seconds={"embed": embedded - started, "index": indexed - embedded},
        fold=vectors.fold,
    )
