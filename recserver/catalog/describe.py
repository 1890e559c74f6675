"""``DescribeItems``: catalogue items as a replica's current snapshot holds them.

Reads the published snapshot, like ``DescribeUser`` and ``Recommend`` do, so an answer shows what
the replica serves now: an item hidden a moment ago reads hidden once the replica's
``visible_position`` reaches the update's log position (``recserver items hide --wait``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from recserver.catalog.view import CatalogView
from recserver.core.errors import InvalidArgument, Unavailable
from recserver.graph.source import SnapshotSource

#: Ids per call at most: the answer stays small (a catalogue dump is not what this is for).
MAX_DESCRIBE_ITEMS = 1000


@dataclass(frozen=True)
class ItemState:
    """One item's catalogue entry in a snapshot; ``found`` False: the snapshot has no such item."""

    item_id: str
    found: bool
    hidden: bool = False
    expires_at: float = 0.0  # 0 = never
    categories: tuple[str, ...] = ()
    degree: int = 0  # the item's edges in the graph (0: catalogue only)


@dataclass(frozen=True)
class ItemStates:
    """The requested items in request order, and the snapshot they were read from."""

    items: list[ItemState]
    snapshot_version: int


def describe_items(graph: SnapshotSource, item_ids: Sequence[str]) -> ItemStates:
    """Each of ``item_ids`` as ``graph``'s current snapshot holds it; raises ``InvalidArgument``
    past ``MAX_DESCRIBE_ITEMS`` ids and ``Unavailable`` while the graph loads."""
    if len(item_ids) > MAX_DESCRIBE_ITEMS:
        raise InvalidArgument(f"{len(item_ids)} item ids in one call; the limit is "
                              f"{MAX_DESCRIBE_ITEMS}: split the request")
    if not graph.ready:
        raise Unavailable("the graph is still loading; retry shortly")
    snap = graph.current
    catalog = snap.catalog if snap.catalog is not None else CatalogView.empty()
    degrees = snap.item_degree
    states = []
    for name in item_ids:
        # A blank id names no item; an id past n_items was added after this snapshot.
        item = snap.items.get(name) if name.strip() else None
        if item is None or item >= snap.n_items:
            states.append(ItemState(name, False))
            continue
        rules = catalog.rules(item)
        degree = int(degrees[item]) if item < degrees.shape[0] else 0
        states.append(ItemState(name, True, rules.hidden, rules.expires_at, rules.categories,
                                degree))
    return ItemStates(states, snap.version)
