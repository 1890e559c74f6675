"""The package's layers, bottom first: a module imports from its own layer or a lower one.

``tests/test_layers.py`` parses every module's imports and fails on an upward one. Each entry
names a module or a package by its path under ``recserver``; a module belongs to the longest
entry that prefixes it, so a package's config model can sit lower than its package (the root
config composes the sections of ``ann``, ``ingest`` and ``online``, packages that themselves
import the config). Peers in one layer may import each other: ``catalog``, ``graph`` and
``eventlog`` are the data model and its log, tied today by the catalogue's own recorder and
describer. Imports under ``if TYPE_CHECKING:`` are for annotations only and not held to it.

From the bottom: shared helpers and the generated protobuf code; the data (graph, catalogue,
event log); the config; the domain (answering a query); what observes it (metrics, online
quality); the fallback tiers' ANN; ingest; the gRPC transport; the node (its one wiring, its
roles, the single-process composition of the same parts, running ``serve``); offline
evaluation; the command line. Serving code
imports nothing from ``eval`` (offline evaluation sits above every serving layer).
"""

from __future__ import annotations

#: Bottom to top; each entry a module or package path relative to ``recserver``.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("core", "proto", "layers"),
    ("catalog", "graph", "eventlog"),
    ("config_errors", "security", "ann.config", "ingest.config", "online.config", "config",
     "config_reload"),
    ("service",),
    ("metrics", "online"),
    ("ann",),
    ("ingest",),
    ("server",),
    ("node",),
    ("eval",),
    ("cli", "entry", "__main__"),
)

#: The layer's index for each entry.
_INDEX = {entry: i for i, layer in enumerate(LAYERS) for entry in layer}


def layer_of(module: str) -> int | None:
    """The layer of ``module`` (a dotted name under ``recserver``), or None when no entry names
    it (the package root itself)."""
    parts = module.split(".")
    if parts[0] != "recserver":
        raise ValueError(f"{module} is not a recserver module")
    for end in range(len(parts), 1, -1):
        found = _INDEX.get(".".join(parts[1:end]))
        if found is not None:
            return found
    return None
