"""What ``recserver replay`` concludes about real time, by one rule used in every sentence.

Every mode answers the same sessions, so realtime and another mode give one paired difference
per session. The error bar of a difference is the 95% confidence interval of its mean under the
normal approximation: ``1.96 x sd(differences) / sqrt(sessions)`` (not a bootstrap). The rule,
judged on recall@k: a difference larger than its error bar is real ("realtime beats X" or "X
beats realtime"); one inside it is within noise ("no clear difference"). The findings, the plot's
bars and the bottom line all apply it, so no two sentences can disagree.

The bottom line compares realtime with the strongest other mode (the highest recall@k): real
time is worth keeping only when it beats that mode by more than the error bar.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from recserver.eval.metrics import Scores

Z95 = 1.96  # two-sided 95% quantile of the normal distribution
BETTER, WORSE, NOISE = "better", "worse", "within_noise"


class ModeLike(Protocol):
    @property
    def name(self) -> str: ...


class ResultLike(Protocol):
    scores: Scores

    @property
    def mode(self) -> ModeLike: ...


def ci95(diff: np.ndarray) -> float:
    """Half-width of the 95% interval of the mean of paired differences (0 below 2 pairs)."""
    if len(diff) < 2:
        return 0.0
    return float(Z95 * diff.std(ddof=1) / np.sqrt(len(diff)))


def judge(points: float, bar: float, sessions: int) -> str:
    """The rule: beyond the error bar is real, inside it is noise (one session: noise)."""
    if sessions < 2 or abs(points) <= bar:
        return NOISE
    return BETTER if points > 0 else WORSE


def real_time_value(results: Sequence[ResultLike], k: int) -> list[dict[str, Any]]:
    """Realtime's quality minus every other mode's: points (x100), relative, their error bars
    (``*_points_ci95``) and the verdict on recall@k (``verdict``: better, worse, within_noise;
    ``realtime_wins`` is ``verdict == "better"``)."""
    base = next((r for r in results if r.mode.name == "realtime"), None)
    if base is None:
        return []
    out = []
    for result in results:
        if result is base:
            continue
        entry: dict[str, Any] = {"versus": result.mode.name}
        for metric, mine, theirs in _metrics(base.scores, result.scores, k):
            diff = mine - theirs
            entry[f"{metric}_points"] = 100.0 * float(diff.mean())
            mean_other = float(theirs.mean())
            entry[f"{metric}_relative"] = float(diff.mean()) / mean_other if mean_other else None
            entry[f"{metric}_points_ci95"] = 100.0 * ci95(diff)
        entry["sessions"] = len(base.scores.recall)
        points, bar = entry[f"recall@{k}_points"], entry[f"recall@{k}_points_ci95"]
        entry["verdict"] = judge(points, bar, entry["sessions"])
        entry["realtime_wins"] = entry["verdict"] == BETTER
        entry["significant"] = entry["verdict"] != NOISE
        out.append(entry)
    return out


def _metrics(mine: Scores, theirs: Scores, k: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    return [(f"recall@{k}", np.asarray(mine.recall), np.asarray(theirs.recall)),
            (f"ndcg@{k}", np.asarray(mine.ndcg), np.asarray(theirs.ndcg)),
            (f"hit_rate@{k}", np.asarray(mine.hits), np.asarray(theirs.hits))]


def error_bar_note(doc: Mapping[str, Any]) -> str:
    """What the ± figures are, for the report and the plot."""
    return (f"± is the 95% confidence interval of the mean per-session difference to realtime "
            f"(1.96 standard errors over {doc['sessions']['asked']:,} paired sessions); judged "
            f"on recall@{doc['k']}, a difference inside it is within noise")


def finding_lines(doc: Mapping[str, Any]) -> list[str]:
    """One sentence per other mode, every one worded by ``judge``'s verdict."""
    k = doc["k"]
    lines = []
    for entry in doc["real_time_value"]:
        other = entry["versus"]
        head = {BETTER: f"realtime beats {other}", WORSE: f"{other} beats realtime",
                NOISE: f"realtime vs {other}: no clear difference"}[entry["verdict"]]
        rel = entry[f"recall@{k}_relative"]
        figures = [f"{_pm(entry, f'recall@{k}')} recall@{k} points"
                   + (f" ({rel:+.1%})" if rel is not None else ""),
                   f"{_pm(entry, f'ndcg@{k}')} ndcg@{k} points",
                   f"{_pm(entry, f'hit_rate@{k}')} hit-rate points"]
        lines.append(f"{head}: {', '.join(figures)}")
    return lines


def bottom_line(doc: Mapping[str, Any]) -> str:
    """The one-line answer: keep real time? yes / no, against the strongest other mode."""
    k = doc["k"]
    key = f"recall@{k}"
    recall = {r["mode"]: r[key] for r in doc["modes"]}
    if "realtime" not in recall:
        return "keep real time? not measured: --modes has no realtime mode"
    values = {v["versus"]: v for v in doc["real_time_value"]}
    if not values:
        return ("keep real time? not measured: nothing to compare realtime with (add frozen or "
                "delayed:D to --modes)")
    rival = max(values, key=lambda name: recall[name])
    entry = values[rival]
    rel = entry[f"{key}_relative"]
    figures = (f"realtime {key} {recall['realtime']:.4f} vs {rival} {recall[rival]:.4f}, the "
               f"best other mode ({f'{rel:+.1%}; ' if rel is not None else ''}"
               f"{_pm(entry, key)} points, 95% CI)")
    if entry["verdict"] == BETTER:
        return f"keep real time? yes: {figures}"
    if entry["verdict"] == WORSE:
        return f"keep real time? no: {figures}; {rival} does better"
    return f"keep real time? no: {figures}; within noise, {rival} does as well"


def _pm(entry: Mapping[str, Any], metric: str) -> str:
    return f"{entry[f'{metric}_points']:+.2f} ± {entry[f'{metric}_points_ci95']:.2f}"
