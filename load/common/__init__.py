"""What the load tools share: percentiles, tables, machine notes (here), and the processes they
start (``redis_server``, ``server_process``, ``empty_server``) and the networkx reference walk.

This module is kept free of recserver imports so a benchmark can import it before it pins
itself to a core.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence

import numpy as np


def pct(values: Sequence[float] | np.ndarray, q: float) -> float:
    """The ``q``-th percentile of ``values`` (nan when empty)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(np.percentile(arr, q)) if arr.size else float("nan")


def machine_line() -> str:
    """One line on the machine and its load, for judging noise."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} cpus, Python {platform.python_version()}, "
        f"numpy {np.__version__}, load average {load}"
    )


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print ``rows`` under ``header`` as aligned columns (plain text, no borders)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def verdict(value: float, target: float, *, higher_is_better: bool) -> str:
    """``met`` / ``MISSED`` and the ratio of ``value`` to ``target``."""
    ok = value >= target if higher_is_better else value <= target
    ratio = value / target if target else float("inf")
    return f"{'met' if ok else 'MISSED'} ({ratio:.2f}x target)"
