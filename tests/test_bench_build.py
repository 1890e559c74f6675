"""The merged build benchmark (``python -m load.benchmarks.build``) runs its parts at a tiny
size and yields every figure docs/scaling.md cites from it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from load.benchmarks.build import ROOT, parse_args, run_child


def test_parts_and_sizes_are_parsed_and_unknown_parts_refused() -> None:
    args = parse_args(["--parts", "sizes,memory", "--sizes", "10_000,20000"])
    assert args.parts == ["sizes", "memory"] and args.sizes == [10_000, 20_000]
    assert parse_args([]).parts == ["sizes"]  # the docs' plain command: the size table
    with pytest.raises(SystemExit):
        parse_args(["--parts", "scaling"])


def test_a_size_child_reports_build_bytes_per_edge_ingest_and_walks() -> None:
    result = run_child(ROOT, "size", "4000:2:10000")
    assert result is not None
    assert result["code"].startswith(str(ROOT))  # the tree under test, in a fresh process
    assert result["events"] == 4000 and result["edges"] > 0
    for key in ("build_s", "snapshot_bpe", "store_bpe", "dedup_bpe", "process_bpe",
                "peak_rss_mib", "ingest_eps", "overlay_publish_ms", "compaction_s", "hops_per_s"):
        assert result[key] > 0, key
    # The edge arrays are part of the whole snapshot; both are per edge.
    assert 0 < result["snapshot_edge_bpe"] < result["snapshot_bpe"]
    assert result["user_walks"] and result["item_walks"]


def test_the_live_part_runs_on_a_tiny_graph() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "load.benchmarks.build", "--parts", "live", "--live-base", "5000",
         "--ingest-seconds", "0.5", "--trials", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ingest, events/s applied [0.005M base]" in proc.stdout
    assert "event visible to walks" in proc.stdout
