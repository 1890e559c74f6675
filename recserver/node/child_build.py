"""One ANN build in a process of its own, at SCHED_IDLE: ``python -m recserver.node.child_build``.

A process of the node (it maps the builder's run directory like a worker), hence in ``node``.
The builder (``ann.child_runner``) starts this process for every build. It puts all its threads
in SCHED_IDLE before anything else (a whole process, so no GIL of the builder is ever held at
that class), maps the newest snapshot the builder published in the run directory (as a serving
worker does), learns the model, and writes every result under the new version (``stage``),
into the same cache the builder uses (Redis, or the sealed files of the run directory), and
saves its item and user vectors for the builder's folds (``ann.fold_saved``). Then it
waits for the builder's go, so the builder can delete erased users' results at that version
before anyone reads it, flips the pointer and exits: the build's whole heap goes back to the
system with the process.

The protocol, one JSON object a line:

* stdin, from the builder: the job (run directory, ANN config, Redis URL, the version to beat,
  the parent's pid), later the line ``flip`` (any other line, or end of file: give up);
* stdout, to the builder: ``{"staged": version, "snapshot": snapshot version}``, then
  ``{"published": version, "snapshot": ..., "summary": text}``.

Anything else the process prints goes to stderr, which the builder logs. Exit status: 0 done,
2 no snapshot to map, 3 the builder went away, 4 told not to flip, 1 any other failure.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from recserver.core.cpu_class import make_idle

log = logging.getLogger("recserver.ann.child")

PR_SET_PDEATHSIG = 1
EXIT_NO_SNAPSHOT, EXIT_ORPHANED, EXIT_NOT_FLIPPED = 2, 3, 4


def _die_with_parent(parent: int) -> bool:
    """SIGKILL this process when the builder's thread that started it ends, even by SIGKILL;
    False when the builder is already gone."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    return os.getppid() == parent


def _protocol_channel() -> TextIO:
    """The real stdout, for protocol lines only; fd 1 then points at stderr, so a library that
    prints (C or Python) cannot corrupt the protocol."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


def build(job: dict[str, Any], say: TextIO) -> int:
    """Map, build, stage, wait for the go, flip. Returns the exit status."""
    from recserver.ann.blas import limit_blas_threads
    from recserver.ann.cache import ResultCache, open_cache
    from recserver.ann.codec import Keys, PayloadError, parse_pointer
    from recserver.ann.config import AnnConfig
    from recserver.ann.file_cache import FileCache
    from recserver.ann.fold_saved import save_vectors
    from recserver.ann.index import set_threads
    from recserver.ann.model import build_model, new_version
    from recserver.ann.precompute import stage, switch_on
    from recserver.ann.vectors import query_rows, user_matrix
    from recserver.node.layout import RunDir
    from recserver.node.mapped import MappedGraph

    make_idle()  # the threads the imports started (OpenBLAS) too
    run = RunDir(Path(job["run_dir"]))
    cfg = AnnConfig.model_validate(job["ann"])
    graph = MappedGraph(run)
    if not graph.wait_ready(float(job.get("wait_s", 60.0))):
        log.error("no snapshot to map in %s", run.snapshots)
        return EXIT_NO_SNAPSHOT
    snapshot = graph.current
    url = job.get("redis_url")
    cache: ResultCache = open_cache(cfg, url) if url else FileCache(run.ann, writer=True)
    set_threads(cfg.build_threads)
    limit_blas_threads(cfg.build_threads)
    previous = job.get("previous")
    try:
        published = parse_pointer(cache.get(Keys(cfg.key_prefix).pointer, cfg.build_timeout_s))
    except PayloadError:
        published = None
    newest = max((v for v in (previous, published) if v is not None), default=None)
    model = build_model(snapshot, cfg, new_version(newest))
    report = stage(model, snapshot, cache, cfg)
    # What the builder folds new items in with between builds (``ann.fold_saved``).
    users = query_rows(user_matrix(snapshot, cfg.user_recent_items), model.vectors, model.fold)
    save_vectors(run.ann, model.version, model.vectors, users,
                 keep={v for v in (published,) if v is not None})
    say.write(json.dumps({"staged": model.version, "snapshot": snapshot.version}) + "\n")
    if sys.stdin.readline().strip() != "flip":
        log.warning("ann build %d staged but not switched on (the builder said no)",
                    model.version)
        return EXIT_NOT_FLIPPED
    switch_on(report, cache, cfg)
    say.write(json.dumps({"published": model.version, "snapshot": snapshot.version,
                          "summary": report.summary()}) + "\n")
    cache.close()
    return 0


def main() -> int:
    make_idle()  # first: the interpreter's own start is all the builder gave at normal class
    # The builder relays these lines through its own log (with its time stamps).
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss").setLevel(logging.WARNING)  # which CPU build it loads
    say = _protocol_channel()
    line = sys.stdin.readline()
    if not line:
        return EXIT_ORPHANED
    job = json.loads(line)
    if not _die_with_parent(int(job["parent"])):
        return EXIT_ORPHANED
    return build(job, say)


if __name__ == "__main__":
    raise SystemExit(main())
