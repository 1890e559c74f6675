"""The replay's conclusions: one rule (difference vs its 95% interval) in every sentence, one
bottom line, error bars on both panels of the plot and y axes from 0."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from recserver.eval.metrics import Scores
from recserver.eval.replay_engine import ModeResult
from recserver.eval.replay_modes import parse_mode
from recserver.eval.replay_verdict import bottom_line, finding_lines, real_time_value

K = 10


def result(mode: str, recall: list[float]) -> ModeResult:
    """A mode's per-session scores (ndcg and hits follow recall)."""
    scores = Scores(k=K, catalogue=100, top_items=frozenset(), recall=list(recall),
                    ndcg=[0.8 * r for r in recall], hits=[float(r > 0) for r in recall])
    return ModeResult(parse_mode(mode), scores)


def conclusions(results: list[ModeResult]) -> tuple[dict[str, Any], list[str], str]:
    value = real_time_value(results, K)
    doc = {"k": K, "real_time_value": value,
           "modes": [{"mode": r.mode.name, f"recall@{K}": r.scores.summary()[f"recall@{K}"]}
                     for r in results]}
    return doc, finding_lines(doc), bottom_line(doc)


def sessions(seed: int, n: int = 200) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, n)


def test_a_gain_inside_its_error_bar_is_within_noise_in_every_sentence() -> None:
    base = sessions(1)
    noisy = np.clip(base + np.random.default_rng(2).normal(0.0, 0.3, len(base)) - 0.01, 0, 1)
    doc, findings, bottom = conclusions([result("realtime", base.tolist()),
                                         result("frozen", noisy.tolist())])
    entry = doc["real_time_value"][0]
    assert 0 < entry["recall@10_points"] < entry["recall@10_points_ci95"]  # ahead, inside noise
    assert entry["verdict"] == "within_noise" and not entry["realtime_wins"]
    assert findings == [findings[0]] and "realtime vs frozen: no clear difference" in findings[0]
    for line in [*findings, bottom]:
        assert "beats" not in line and "wins" not in line
    assert bottom.startswith("keep real time? no: realtime recall@10 ")
    assert "within noise, frozen does as well" in bottom
    assert f"± {entry['recall@10_points_ci95']:.2f} points, 95% CI" in bottom


def test_a_gain_beyond_its_error_bar_keeps_real_time_against_the_best_other_mode() -> None:
    base = sessions(3)
    doc, findings, bottom = conclusions([
        result("realtime", base.tolist()),
        result("delayed:1h", (base - 0.05).clip(0, 1).tolist()),  # behind by a steady 5 points
        result("frozen", (base * 0.5).tolist()),
    ])
    by_mode = {v["versus"]: v for v in doc["real_time_value"]}
    assert by_mode["delayed:1h"]["verdict"] == by_mode["frozen"]["verdict"] == "better"
    assert findings[0].startswith("realtime beats delayed:1h: +")
    assert findings[1].startswith("realtime beats frozen: +")
    assert all("no clear difference" not in line for line in findings)
    # judged against the strongest alternative (delayed:1h), not the weakest (frozen)
    assert bottom.startswith("keep real time? yes: realtime recall@10 ")
    assert "vs delayed:1h" in bottom and "the best other mode" in bottom


def test_a_loss_beyond_its_error_bar_says_the_other_mode_does_better() -> None:
    base = sessions(4)
    _, findings, bottom = conclusions([result("realtime", (base * 0.5).tolist()),
                                       result("ease:1d", base.tolist())])
    assert findings[0].startswith("ease:1d beats realtime: -")
    assert bottom.startswith("keep real time? no: ") and "ease:1d does better" in bottom


@pytest.mark.parametrize(("modes", "expected"), [
    (["frozen"], "keep real time? not measured: --modes has no realtime mode"),
    (["realtime"], "keep real time? not measured: nothing to compare realtime with"),
])
def test_the_bottom_line_says_when_it_cannot_answer(modes: list[str], expected: str) -> None:
    _, _, bottom = conclusions([result(mode, sessions(5).tolist()) for mode in modes])
    assert bottom.startswith(expected)


def test_the_plot_has_error_bars_on_both_panels_and_y_axes_from_zero() -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.container import ErrorbarContainer

    from recserver.eval.replay_plot import draw_freshness

    base = sessions(6)
    results = [result("realtime", base.tolist()), result("frozen", (base * 0.9).tolist()),
               result("ease:1d", (base * 0.95).tolist())]
    doc, _, _ = conclusions(results)
    doc.update(source="synthetic:1", surface="home", split={"test_days": 10.0},
               sessions={"asked": len(base)})
    for record, r in zip(doc["modes"], results, strict=True):
        record.update(kind=r.mode.kind, freshness_s=r.mode.freshness_s
                      if np.isfinite(r.mode.freshness_s) else None,
                      **{f"ndcg@{K}": r.scores.summary()[f"ndcg@{K}"]})
    fig = draw_freshness(doc)
    axes = fig.get_axes()
    assert len(axes) == 2
    for ax in axes:
        bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        assert len(bars) == 2  # frozen and ease:1d, each against realtime
        assert ax.get_ylim()[0] == 0.0
        assert ax.get_ylim()[1] > max(r[ax.get_ylabel()] for r in doc["modes"])
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert labels and all("10^" not in t and "times" not in t for t in labels)
    assert any("95% confidence interval" in t.get_text() for t in fig.texts)
