"""``recserver tune``: the frontier, the recommendation rule, the snippet, a real small sweep."""

from __future__ import annotations

import itertools
import json

import pytest
import yaml

from recserver.cli import main
from recserver.cli.tune import format_tune, percent, tune_document
from recserver.config import config_from_document, load_config
from recserver.eval.tune import (
    Point,
    eligible,
    merged_document,
    pareto_frontier,
    recommend,
    snippet,
)


def point(budget: float | None, steps: int, quality: float, p99: float, cut: float = 0.0,
          n_v: int = 4) -> Point:
    return Point(budget, steps, n_v, quality, p99 / 2, p99, cut, 100)


#: A known frontier: quality rises with budget until the unbounded walk (1.0).
KNOWN = [
    point(2.0, 10_000, 0.50, 1.0, cut=0.5),  # the deadline cut half the walks
    point(2.5, 50_000, 1.20, 1.1, cut=0.9),  # scores high only thanks to the fallback top-up
    point(3.0, 10_000, 0.80, 1.5),
    point(5.0, 20_000, 0.90, 3.0),
    point(8.0, 50_000, 0.985, 6.0),
    point(12.0, 100_000, 0.99, 9.0),
    point(20.0, 100_000, 0.97, 15.0, n_v=2),  # dominated
    point(None, 100_000, 1.00, 10.0),  # the unbounded reference
]


def test_frontier_of_the_known_fixture() -> None:
    frontier = pareto_frontier(eligible(KNOWN))
    assert [(p.budget_ms, p.quality) for p in frontier] == [
        (3.0, 0.80), (5.0, 0.90), (8.0, 0.985), (12.0, 0.99), (None, 1.00)]
    # Along the frontier p99 rises and quality rises strictly.
    assert all(a.p99_ms <= b.p99_ms and a.quality < b.quality
               for a, b in itertools.pairwise(frontier))


def budget(points: list[Point], threshold: float, max_cut: float = 0.01) -> float | None:
    choice = recommend(points, threshold, max_cut)
    assert choice is not None
    return choice.budget_ms


def test_recommends_the_smallest_budget_meeting_the_threshold() -> None:
    assert budget(KNOWN, 0.98) == 8.0  # 0.985 >= 0.98 x 1.00; 5 ms (0.90) is not
    assert budget(KNOWN, 0.90) == 5.0
    assert budget(KNOWN, 0.50) == 3.0  # the 2 ms point cuts too many walks
    # The unbounded point sets the bar but is never the answer.
    assert recommend(KNOWN, 0.999) is None
    # Allowing cut walks lets the topped-up 2.5 ms point be the best and the choice.
    assert budget(KNOWN, 0.98, max_cut=1.0) == 2.5


def test_ties_on_budget_go_to_the_lower_p99_then_fewer_steps() -> None:
    points = [point(5.0, 50_000, 0.99, 4.0), point(5.0, 20_000, 0.99, 3.0),
              point(5.0, 10_000, 0.99, 3.0), point(None, 50_000, 1.0, 4.0)]
    choice = recommend(points, 0.98)
    assert choice is not None and (choice.budget_ms, choice.steps) == (5.0, 10_000)
    assert recommend([], 0.98) is None


def test_snippet_and_the_merged_config(tmp_path) -> None:
    config = config_from_document({"surfaces": {"home": {"budget_ms": 60, "sla_p99_ms": 80},
                                                "search": {"budget_ms": 5, "sla_p99_ms": 6}}})
    assert snippet("home", point(8.0, 50_000, 0.9, 6.0, n_v=2), config) == {
        "surfaces": {"home": {"budget_ms": 8, "walk": {"steps": 50_000, "n_v": 2}}}}
    # A budget above the SLA raises the SLA with it (validation wants sla >= budget).
    assert snippet("search", point(7.5, 10_000, 0.9, 6.0), config)["surfaces"]["search"][
        "sla_p99_ms"] == 7.5
    path = tmp_path / "c.yaml"
    path.write_text("defaults: {k_default: 10}\nsurfaces:\n  home: {budget_ms: 60}\n")
    merged = merged_document(path, snippet("home", point(8.0, 50_000, 0.9, 6.0), config))
    assert merged["surfaces"]["home"] == {"budget_ms": 8, "walk": {"steps": 50_000, "n_v": 4}}
    assert merged["defaults"] == {"k_default": 10}


def test_cli_sweep_plot_and_config(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    png, written, out = tmp_path / "t.png", tmp_path / "tuned.yaml", tmp_path / "t.json"
    code = main(["tune", "--surface", "home", "--synthetic", "8000", "--max-users", "15",
                 "--steps", "1000,3000", "--n-v", "4", "--budgets", "3,40", "--plot", str(png),
                 "--write-config", str(written), "--out", str(out), "--threshold", "0.5",
                 "--degree-beta", "0,0.5", "--restart-prob", "0.8", "--seed-weight-exponent", "1"])
    assert code == 0
    text = capsys.readouterr().out
    assert "Pareto frontier" in text and "recommended: budget" in text
    assert "config snippet" in text
    doc = json.loads(out.read_text())
    assert doc["schema"] == "recserver.tune/1"
    assert doc["unbounded"]["budget_ms"] is None and doc["unbounded"]["steps"] == 3000
    assert {p["steps"] for p in doc["points"]} == {1000, 3000}
    assert doc["recommendation"] is not None
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tuned = load_config(written)
    assert tuned.surfaces["home"].budget_ms == doc["recommendation"]["budget_ms"]
    assert yaml.safe_load(doc["snippet"])["surfaces"]["home"]["walk"]["steps"] == tuned.surfaces[
        "home"].walk.steps
    # The scoring settings were swept on the training period and the best one is written.
    scoring = doc["scoring"]
    assert [p["settings"]["degree_beta"] for p in scoring["validation"]] == [0.0, 0.5]
    best = max(scoring["validation"], key=lambda p: p["quality"])
    assert scoring["chosen"] == best["settings"]
    assert tuned.surfaces["home"].walk.degree_beta == best["settings"]["degree_beta"]
    first = text.splitlines()[0]
    assert first.startswith(f"walk scoring: degree_beta {best['settings']['degree_beta']:g}, ")
    assert "chosen from 2 settings on the training-period validation split" in first
    assert "{'" not in text  # no Python dict dump


def test_cli_rejects_an_unknown_surface(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--surface", "nope", "--synthetic", "2000"]) == 2
    assert "unknown surface 'nope'" in capsys.readouterr().err


def known_document() -> dict:
    """The tune document of ``KNOWN`` after a 16-setting scoring sweep, as the CLI builds it."""
    doc = tune_document(KNOWN, recommend(KNOWN, 0.98), source="synthetic:1", surface="home",
                        k=20, metric="recall", threshold=0.98, max_cut=0.01,
                        fragment={"surfaces": {"home": {"budget_ms": 12}}}, plot_path=None)
    grid = [{"degree_beta": b, "restart_prob": r, "seed_weight_exponent": e}
            for b in (0.0, 0.3, 0.5, 0.7) for r in (0.5, 0.8) for e in (0.5, 1.0)]
    validation = [{"settings": g, "quality": 0.1 + i / 1000, "p50_ms": 1.0}
                  for i, g in enumerate(grid)]
    doc["scoring"] = {"chosen": grid[-1], "validation": validation}
    return doc


def test_the_report_opens_with_a_short_header_and_shows_cut_as_a_percentage() -> None:
    text = format_tune(known_document())
    lines = text.splitlines()
    assert lines[0] == ("walk scoring: degree_beta 0.7, restart_prob 0.8, seed_weight_exponent "
                        "1, chosen from 16 settings on the training-period validation split "
                        "(recall@20 0.1150 there; worst setting 0.1000; every setting in the "
                        "JSON document)")
    assert "{'" not in text and "settings" not in "\n".join(lines[1:])
    start = lines.index(next(line for line in lines if line.startswith("budget_ms"))) + 2
    rows = [line.split() for line in lines[start:start + len(KNOWN)]]
    cuts = {f"{row[0]}/{row[1]}": row[6] for row in rows}
    assert cuts == {"2/10,000": "50%", "2.5/50,000": "90%", "3/10,000": "0%", "5/20,000": "0%",
                    "8/50,000": "0%", "12/100,000": "0%", "20/100,000": "0%",
                    "unbounded/100,000": "0%"}
    assert "points cutting more than 1% are not eligible" in text
    assert [percent(x) for x in (0.0, 0.003, 0.017, 0.55, 1.0)] == ["0%", "0.3%", "1.7%", "55%",
                                                                      "100%"]
    assert "cut 0%" in next(line for line in lines if line.startswith("recommended:"))


@pytest.mark.parametrize("spread", [1.0, 100.0])  # a narrow (linear) and a wide (log) x range
def test_the_plot_starts_at_zero_with_plain_tick_labels(spread: float) -> None:
    pytest.importorskip("matplotlib")
    from recserver.eval.tune_plot import draw

    points = [Point(p.budget_ms, p.steps, p.n_v, p.quality, p.p50_ms,
                    0.5 + (p.p99_ms - 1.0) * spread / 14.0, p.cut_share, p.users) for p in KNOWN]
    ax = draw(points, recommend(points, 0.98), 0.98, "t").get_axes()[0]
    assert ax.get_ylim()[0] == 0.0 and ax.get_ylim()[1] > max(p.quality for p in points)
    assert ax.get_xscale() == ("log" if spread > 3 else "linear")
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels and all("10^" not in t and "times" not in t for t in labels)
    assert all(float(t) > 0 for t in labels)
