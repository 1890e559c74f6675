"""``recserver build-ann``: build the ANN results for a graph and publish them to the cache."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from recserver.ann.blas import limit_blas_threads
from recserver.ann.cache import open_cache
from recserver.ann.index import set_threads
from recserver.ann.model import build_model, new_version
from recserver.ann.precompute import publish
from recserver.cli._source_args import add_source_args
from recserver.config import load_config
from recserver.core.redis_url import redact_url, resolve_redis_url
from recserver.graph.bootstrap import build_graph

NAME = "build-ann"
HELP = "build ANN results (embeddings, index, top-K) and publish them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_args(parser)
    parser.add_argument("--config", type=Path, help="YAML config (its graph and ann sections)")
    parser.add_argument(
        "--redis-url", help="where to publish (wins over RECSERVER_REDIS_URL and ann.redis_url)"
    )
    parser.add_argument("--threads", type=int, help="FAISS/BLAS threads (default: build_threads)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--save-vectors", type=Path, metavar="DIR",
        help="also write DIR/item_vectors.npy and DIR/item_ids.txt (ann.embeddings.path/ids_path)",
    )


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    cfg = config.ann
    url, origin = resolve_redis_url(args.redis_url, cfg.url())
    threads = args.threads or cfg.build_threads
    set_threads(threads)
    limit_blas_threads(threads)
    graph, loaded = build_graph(
        config.graph, events=args.events, synthetic=args.synthetic, strict=args.strict
    )
    snap = graph.current
    print(f"graph           {snap.n_users:,} users, {snap.n_items:,} items, {snap.n_edges:,} "
          f"edges from {loaded.source}")
    cache = open_cache(cfg, url)
    where = redact_url(url) if url else "an in-process cache"
    print(f"cache           {where} (from {origin})")
    if cache.backend != "redis":
        print("                no Redis configured: a dry run, the results go when this exits",
              file=sys.stderr)
    try:
        model = build_model(snap, cfg, new_version())
        report = publish(model, snap, cache, cfg, progress=not args.no_progress)
    finally:
        cache.close()
    print(report.summary())
    if args.save_vectors is not None:
        args.save_vectors.mkdir(parents=True, exist_ok=True)
        np.save(args.save_vectors / "item_vectors.npy", model.vectors)
        (args.save_vectors / "item_ids.txt").write_text(
            "\n".join(model.item_names) + "\n", encoding="utf-8"
        )
        print(f"saved           {args.save_vectors}/item_vectors.npy, item_ids.txt")
    return 0
