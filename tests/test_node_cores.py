"""The default worker count follows the CPUs the node may really use."""

from __future__ import annotations

import os
from pathlib import Path

from recserver.node.commands import usable_cores


def test_a_container_cpu_limit_caps_the_worker_count(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert usable_cores(cpu_max) == affinity
    cpu_max.write_text("100000 100000\n")  # a limit of one CPU
    assert usable_cores(cpu_max) == 1
    cpu_max.write_text("50000 100000\n")  # half a CPU still runs one worker
    assert usable_cores(cpu_max) == 1
    assert usable_cores(tmp_path / "missing") == affinity
