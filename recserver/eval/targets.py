"""The targets ``evaluate`` checks, each from strategies measured in the same run.

Targets are promises to users (quality against the standard baselines, the serving path inside
its budget); information lines give context (how much slower the textbook PageRank is) and are
never reported as met or missed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from recserver.eval.metrics import Scores, recall_at_k
from recserver.eval.report import Target, ratio
from recserver.eval.split import EvalUser


class MeasuredLike(Protocol):
    description: str
    scores: Scores
    answers: dict[str, list[str]]


def targets(
    results: Mapping[str, MeasuredLike], users: Sequence[EvalUser], k: int,
    budget_ms: float | None = None,
) -> list[Target]:
    """Every target (and information line) whose strategies are present in ``results``."""
    out: list[Target] = []
    summary = {name: m.scores.summary() for name, m in results.items()}
    recall = {name: s[f"recall@{k}"] for name, s in summary.items()}
    if "graph" in recall and "popular" in recall:
        value = ratio(recall["graph"], recall["popular"])
        out.append(Target(f"graph recall@{k} / popular", value, 1.3, value >= 1.3,
                          f"{recall['graph']:.4f} vs {recall['popular']:.4f}"))
    if "graph" in recall and "graph_budget" in recall:
        value = ratio(recall["graph_budget"], recall["graph"])
        out.append(Target(f"budgeted recall@{k} / unbounded walk", value, 0.95, value >= 0.95,
                          f"{recall['graph_budget']:.4f} vs {recall['graph']:.4f} "
                          f"({results['graph_budget'].description})"))
    strong = {name: recall[name] for name in ("itemknn", "rp3beta", "als") if name in recall}
    if "graph_budget" in recall and strong:
        best = max(strong, key=lambda name: strong[name])
        value = ratio(recall["graph_budget"], strong[best])
        out.append(Target(f"serving path recall@{k} / best of ItemKNN, RP3beta, ALS", value, 1.0,
                          value >= 1.0, f"{recall['graph_budget']:.4f} vs {best} "
                          f"{strong[best]:.4f}"))
    if "graph_budget" in recall and "ease" in recall:
        value = ratio(recall["graph_budget"], recall["ease"])
        out.append(Target(f"serving path recall@{k} / EASE (goal)", value, 1.0, value >= 1.0,
                          f"{recall['graph_budget']:.4f} vs {recall['ease']:.4f}"))
    if "ann" in recall and "als" in recall:
        value = ratio(recall["ann"], recall["als"])
        out.append(Target(f"ANN tier recall@{k} / ALS", value, 0.9, value >= 0.9,
                          f"{recall['ann']:.4f} vs {recall['als']:.4f}"))
    if "blended" in recall and "graph" in recall and "ann" in recall:
        inputs = max(recall["graph"], recall["ann"])
        value = ratio(recall["blended"], inputs)
        out.append(Target(f"blended recall@{k} / max(walk, ANN)", value, 1.0, value >= 1.0,
                          f"{recall['blended']:.4f} vs walk {recall['graph']:.4f}, "
                          f"ANN {recall['ann']:.4f}"))
    if "graph_budget" in summary and budget_ms is not None:
        p50, p99 = summary["graph_budget"]["p50_ms"], summary["graph_budget"]["p99_ms"]
        out.append(Target("serving path p99 ms", p99, budget_ms, p99 <= budget_ms,
                          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, budget {budget_ms:g} ms",
                          op="<="))
    if "nx_pagerank" in results and "graph" in results:
        out.append(_pagerank_line(results, users, k, summary, recall))
    return out


def _pagerank_line(results: Mapping[str, MeasuredLike], users: Sequence[EvalUser], k: int,
                   summary: Mapping[str, Mapping[str, float]],
                   recall: Mapping[str, float]) -> Target:
    pr, graph = results["nx_pagerank"], results["graph"]
    pr_ms, walk_ms = summary["nx_pagerank"]["mean_ms"], summary["graph"]["mean_ms"]
    value = ratio(pr_ms, walk_ms)
    same = [u for u in users if u.name in pr.answers]
    walk_recall = float(np.mean([recall_at_k(graph.answers[u.name], u.relevant, k)
                                 for u in same])) if same else 0.0
    detail = (f"mean {pr_ms:,.1f} ms vs {walk_ms:.2f} ms a query; recall@{k} on its "
              f"{len(same)} users {recall['nx_pagerank']:.4f} vs walk {walk_recall:.4f}")
    if "graph_budget" in summary:
        detail += (f"; vs the budgeted path "
                   f"{ratio(pr_ms, summary['graph_budget']['mean_ms']):,.0f}x")
    return Target("nx PageRank time / walk time", value, 1000.0, value >= 1000.0, detail,
                  kind="information")
