"""What ``recserver evaluate`` concludes: rows that are one strategy twice, and the verdict.

Two strategies can answer every user identically: the serving path (``graph_budget``) already
pools a walk that completed with the ANN tier (``fallback.blend.pool_complete_walk``), so when
no walk is cut by the budget and the ``blended`` strategy's chosen fusion and share are the
serving blend's, the two rows are the same computation with the same random numbers. The report
says so instead of leaving two equal rows unexplained.

The verdict is one line: how close the answers the server gives come to the strongest
baseline (EASE when it ran), and how many targets were met.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from recserver.config import BlendConfig

BASELINE_NAMES = ("ease", "itemknn", "rp3beta", "als")


class Answered(Protocol):
    answers: dict[str, list[str]]


def same_answers(results: Mapping[str, Answered]) -> list[tuple[str, str]]:
    """``(strategy, earlier strategy)`` pairs that gave every user the same list.

    Only strategies that answered the same users count; each strategy is paired with the first
    earlier one it duplicates.
    """
    pairs: list[tuple[str, str]] = []
    names = list(results)
    for i, name in enumerate(names):
        mine = results[name].answers
        for earlier in names[:i]:
            if mine and mine == results[earlier].answers:
                pairs.append((name, earlier))
                break
    return pairs


def why_same(pair: tuple[str, str], serving_blend: BlendConfig, budget_ms: float,
             blend_doc: Mapping[str, Any] | None, walks_cut: int = 0) -> str:
    """Why the two strategies of ``pair`` coincide, as far as their definitions tell.

    ``walks_cut``: answers of the serving path whose walk the deadline cut or skipped.
    """
    names = set(pair)
    share = None if blend_doc is None else blend_doc.get("share")
    if names == {"graph_budget", "blended"} and serving_blend.pool_complete_walk is not None:
        fusion = "score" if serving_blend.mode == "score" else "rank"
        budget = f" and the {budget_ms:g} ms budget cut no walk," if walks_cut == 0 else ","
        return (f"the serving path already pools a complete walk with the ANN tier ({fusion} "
                f"fusion, walk share {serving_blend.pool_complete_walk:g}: "
                f"fallback.blend.pool_complete_walk){budget} so the blend "
                f"({_blend(blend_doc)}) is what the server does")
    if names == {"graph", "blended"} and share == 1.0:
        return "the blend chosen on validation gives the walk all the weight (walk share 1)"
    if names == {"ann", "blended"} and share == 0.0:
        return "the blend chosen on validation gives the ANN tier all the weight (walk share 0)"
    if names == {"graph", "graph_budget"}:
        return "the serving path answered every user from a complete walk alone"
    return "the same list for every user"


def _blend(doc: Mapping[str, Any] | None) -> str:
    return "fixed" if doc is None else f"{doc.get('mode')}, walk share {doc.get('share'):g}"


def verdict(records: Sequence[Mapping[str, Any]], k: int, met: int, targets: int) -> str:
    """One line: the served answers' recall@k against EASE and the best baseline."""
    recall = {r["strategy"]: float(r[f"recall@{k}"]) for r in records}
    key = f"recall@{k}"
    served = next((name for name in ("graph_budget", "graph") if name in recall), None)
    tail = f"; {met} of {targets} targets met" if targets else ""
    if served is None:
        return f"verdict: no graph strategy ran, nothing to judge{tail}"
    what = ("served answers (graph_budget) reach" if served == "graph_budget"
            else "the walk alone (graph) reaches")
    mine = recall[served]
    baselines = {name: recall[name] for name in BASELINE_NAMES if name in recall}
    if not baselines:
        base = recall.get("popular")
        against = (f" {_times(mine, base)} popular's {key} ({mine:.4f} vs {base:.4f})"
                   if base is not None else f" {key} {mine:.4f}")
        return f"verdict: {what}{against}; no baseline ran{tail}"
    best = max(baselines, key=lambda name: baselines[name])
    if "ease" in baselines:
        line = (f"verdict: {what} {_share(mine, baselines['ease'])} of EASE {key} "
                f"({mine:.4f} vs {baselines['ease']:.4f})")
        if best != "ease":
            line += (f"; best baseline {best} {baselines[best]:.4f} "
                     f"({_share(mine, baselines[best])})")
    else:
        line = (f"verdict: {what} {_share(mine, baselines[best])} of the best baseline "
                f"{best}'s {key} ({mine:.4f} vs {baselines[best]:.4f}; EASE did not run)")
    return line + tail


def _share(a: float, b: float) -> str:
    return f"{a / b:.0%}" if b > 0 else "n/a"


def _times(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "n/a x"
