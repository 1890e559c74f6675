"""Erasures around an ANN build in a child process: the staged version never shows the user.

The builder side (``AnnRuntime`` with a ``ChildJob``) runs here; the child is a real process that
maps the snapshot files this test writes. The sealed-file cache is written by two processes (the
child seals, the builder erases): neither may undo the other.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from recserver.ann.cache import CountingMetrics
from recserver.ann.child_runner import ChildJob
from recserver.ann.codec import Keys
from recserver.ann.file_cache import KEEP_S, MANIFEST, FileCache, key_hash
from recserver.ann.runtime import AnnRuntime
from recserver.core.cpu_class import policy
from recserver.graph.config import GraphConfig
from recserver.graph.live import LiveGraph
from recserver.graph.synthetic import generate
from recserver.node.layout import RunDir
from recserver.node.snapshot_files import SnapshotWriter
from tests.ann_helpers import ann_config


def users_with_items(live: LiveGraph, n: int) -> list[str]:
    snap = live.current
    active = np.flatnonzero(np.diff(snap.base_users.indptr) > 0)[:n]
    return snap.users.names(active.tolist())


def test_users_erased_after_the_childs_snapshot_are_gone_before_its_pointer_flips(
    tmp_path: Path,
) -> None:
    run = RunDir(tmp_path / "run").create()
    writer = SnapshotWriter(run)
    live = LiveGraph(GraphConfig())
    live.ingest(generate(5_000, seed=3))
    live.publish(compact=True)
    writer.write(live.current)  # the snapshot the child maps: it still holds both users
    cfg = ann_config()
    runtime = AnnRuntime(cfg, live, cache=FileCache(run.ann, writer=True, recheck_s=0.0),
                         metrics=CountingMetrics(), child=ChildJob(run.root))
    runtime.follow_erasures(live)
    try:
        gone, kept = users_with_items(live, 2)
        live.erase_users([gone])
        live.publish()  # in memory only: the files the child maps still hold the user
        outcome = runtime.build_in_child()
        assert outcome.snapshot_version == 1 and runtime.tier.state is not None
        assert runtime.tier.state.version == outcome.version
        keys = Keys(cfg.key_prefix, outcome.version)
        worker = FileCache(run.ann, writer=False, recheck_s=0.0)
        assert worker.get(keys.pointer) == str(outcome.version).encode()
        assert worker.get(keys.user(kept)) is not None
        assert worker.get(keys.user(gone)) is None
        manifest = json.loads((run.ann / MANIFEST).read_text())
        assert manifest["erased"] == [key_hash(keys.user(gone))]
        assert runtime.child is not None and runtime.child.last_pid is not None
        assert policy(runtime.child.last_pid) == "gone"  # exited: its memory went with it
    finally:
        runtime.stop(timeout_s=2.0)


def test_an_erasure_while_a_version_is_staged_elsewhere_survives_its_seal(
    tmp_path: Path,
) -> None:
    builder = FileCache(tmp_path, writer=True)  # records erasures
    child = FileCache(tmp_path, writer=True)  # stages and seals (another process in a node)
    worker = FileCache(tmp_path, writer=False, recheck_s=0.0)
    old, new = Keys("ann", 1), Keys("ann", 2)
    child.put_many([(old.user("a"), b"1"), (Keys("ann").pointer, b"1")], ttl_s=60)
    child.put_many([(new.user("a"), b"2"), (new.user("b"), b"2")], ttl_s=60)  # staged
    builder.delete([new.user("a"), old.user("a")])  # erased while version 2 is staged
    assert worker.get(old.user("a")) is None
    child.put_many([(Keys("ann").pointer, b"2")], ttl_s=60)  # the flip seals version 2
    assert worker.get(Keys("ann").pointer) == b"2"
    assert worker.get(new.user("a")) is None and worker.get(new.user("b")) == b"2"
    # An erasure after the seal keeps the name the manifest has now (the child's), not the
    # builder's idea of it.
    builder.delete([new.user("b")])
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["name"] == child._sealed_name
    assert worker.get(new.user("b")) is None and worker.get(Keys("ann").pointer) == b"2"


def test_replaced_versions_are_deleted_by_whoever_seals_after_the_grace(tmp_path: Path) -> None:
    first, second = FileCache(tmp_path, writer=True), FileCache(tmp_path, writer=True)
    first.put_many([(b"k", b"1"), (Keys("ann").pointer, b"1")], ttl_s=60)
    old_name = first._sealed_name
    second.put_many([(b"k", b"2"), (Keys("ann").pointer, b"2")], ttl_s=60)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert old_name in manifest["retired"] and list(tmp_path.glob(old_name + ".*"))
    # Backdate the retirement past the grace period: the next seal, by any writer, collects it.
    manifest["retired"][old_name] -= KEEP_S + 1
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    first.put_many([(b"k", b"3"), (Keys("ann").pointer, b"3")], ttl_s=60)
    assert not list(tmp_path.glob(old_name + ".*"))
    assert old_name not in json.loads((tmp_path / MANIFEST).read_text())["retired"]
