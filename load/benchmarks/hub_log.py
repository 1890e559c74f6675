"""A hard event log for serving benchmarks: hub items and heavy users on top of the synthetic one.

    .venv/bin/python -m load.benchmarks.hub_log var/perf/hub.parquet --events 2500000

The embedded synthetic log is gentle on the walk: its busiest item and its busiest user are a
few thousand edges. Real logs are not: a handful of items are in a tenth of all sessions, and a
few accounts (resellers, bots, shared devices) hold thousands of items each. Both make walks
slow (a hub's row is long, a heavy user seeds the walk from many strong items) and both make
the fallback matter, so the door and budget benchmarks run on this log:

* the synthetic model (``recserver.graph.synthetic``) for ``1 - HUB_SHARE - HEAVY_SHARE`` of
  the events;
* ``HUB_SHARE`` of the events go to ``N_HUBS`` hub items, by a steep Zipf law among them, from
  users drawn like the synthetic ones (so hubs connect every taste cluster);
* ``HEAVY_SHARE`` go from ``N_HEAVY`` heavy users to items drawn from the whole catalogue
  (a heavy user's row reaches the pruning cap, ``graph.prune.max_user_degree``).

Timestamps are recent (the period ends today), so time decay treats the log as live history.
Same arguments, same file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from recserver.graph.event_files import write_events
from recserver.graph.events import EventColumns
from recserver.graph.synthetic import generate, recent_start

HUB_SHARE = 0.10
HEAVY_SHARE = 0.05
N_HUBS = 20
N_HEAVY = 200


def hub_log(n_events: int, *, seed: int = 11, days: float = 30.0) -> EventColumns:
    """``n_events`` events: the synthetic log plus hub items and heavy users (module docstring)."""
    rng = np.random.default_rng(seed)
    n_hub = int(n_events * HUB_SHARE)
    n_heavy = int(n_events * HEAVY_SHARE)
    start = recent_start(days)
    base = generate(n_events - n_hub - n_heavy, seed=seed, start=start, days=days)
    n_users, n_items = len(base.user_names), len(base.item_names)
    # Hubs are existing items (ids i0..), so they also carry their ordinary traffic.
    hub_rank = np.minimum(rng.zipf(1.6, n_hub) - 1, N_HUBS - 1)
    hub_items = rng.choice(n_items, N_HUBS, replace=False).astype(np.int32)[hub_rank]
    hub_users = base.user_codes[rng.integers(0, base.user_codes.shape[0], n_hub)]
    # Heavy users are new accounts u<n_users>.. with a lognormal share of the heavy events.
    share = rng.lognormal(0.0, 0.8, N_HEAVY)
    heavy_users = n_users + rng.choice(N_HEAVY, n_heavy, p=share / share.sum()).astype(np.int32)
    heavy_items = rng.integers(0, n_items, n_heavy).astype(np.int32)

    users = np.concatenate([base.user_codes, hub_users, heavy_users]).astype(np.int32)
    items = np.concatenate([base.item_codes, hub_items, heavy_items]).astype(np.int32)
    extra = n_hub + n_heavy
    types = np.concatenate([base.type_codes, rng.choice(
        len(base.type_names), extra, p=[0.70, 0.20, 0.07, 0.03])]).astype(np.int32)
    weight = np.concatenate([base.weight, np.ones(extra)])
    timestamp = np.concatenate([base.timestamp,
                                np.floor(start + rng.random(extra) * days * 86_400.0)])
    order = np.argsort(timestamp, kind="stable")
    return EventColumns(
        user_codes=users[order], item_codes=items[order], type_codes=types[order],
        weight=weight[order], timestamp=timestamp[order],
        user_names=[*base.user_names, *(f"u{n_users + i}" for i in range(N_HEAVY))],
        item_names=list(base.item_names), type_names=list(base.type_names),
    )


def heavy_user_ids(n_events: int) -> list[str]:
    """The heavy users' ids in a log of ``n_events`` (for benchmarks that ask for them)."""
    n_users = min(max(10, (n_events - int(n_events * HUB_SHARE) - int(n_events * HEAVY_SHARE))
                      // 30), n_events)
    return [f"u{n_users + i}" for i in range(N_HEAVY)]


def ensure_hub_log(path: Path, n_events: int) -> Path:
    """Write the log to ``path`` unless a file of that name is there (named by its size)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp" + path.suffix)
        write_events(hub_log(n_events), tmp)
        tmp.replace(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="output file (.csv, .jsonl or .parquet)")
    parser.add_argument("--events", type=int, default=2_500_000)
    args = parser.parse_args()
    cols = hub_log(args.events)
    write_events(cols, args.path)
    degree = np.bincount(cols.item_codes)
    activity = np.bincount(cols.user_codes)
    print(f"{args.path}: {cols.user_codes.shape[0]:,} events, {len(cols.user_names):,} users, "
          f"{len(cols.item_names):,} items; busiest item {degree.max():,} events, busiest user "
          f"{activity.max():,}")


if __name__ == "__main__":
    main()
