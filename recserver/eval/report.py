"""Tables for people and JSON documents for tools (schemas in ``docs/evaluation.md``)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

EVALUATE_SCHEMA = "recserver.evaluate/1"
TUNE_SCHEMA = "recserver.tune/1"
COMPARE_SCHEMA = "recserver.compare/1"


@dataclass(frozen=True)
class Target:
    """One target line: a measured ratio against its threshold.

    ``kind="information"`` marks a figure reported for context, not a promise to users: its
    line says ``info`` instead of met / NOT met.
    """

    name: str
    value: float
    threshold: float
    met: bool
    detail: str
    op: str = ">="
    kind: str = "target"

    def line(self) -> str:
        mark = "info" if self.kind == "information" else ("met" if self.met else "NOT met")
        value = f"{self.value:,.0f}" if abs(self.value) >= 100 else f"{self.value:.3g}"
        goal = "reference" if self.kind == "information" else "target"
        return (f"  [{mark:>7}] {self.name}: {value} ({goal} {self.op} {self.threshold:g}); "
                f"{self.detail}")

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        out["value"] = finite(self.value)
        del out["kind"]  # targets and information lines are kept in separate lists
        return out


def finite(value: float) -> float | None:
    """JSON has no infinity or NaN: those become null."""
    return value if math.isfinite(value) else None


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else (math.inf if a > 0 else 0.0)


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """A plain fixed-width table; floats get 4 significant digits."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(header, widths, strict=True)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.4g}" if abs(value) < 1e3 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def dump_json(document: dict[str, Any], path: Path | None = None) -> str:
    text = json.dumps(document, indent=2, sort_keys=False, default=_json_default)
    if path is not None:
        path.write_text(text + "\n")
    return text


def _json_default(value: object) -> object:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
