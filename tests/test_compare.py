"""``recserver compare``: effective quality, the verdict and its reasons, the command."""

from __future__ import annotations

import json

import pytest

from recserver.cli import main
from recserver.eval.compare import Side, compare_document, decide, effective_quality, markdown

BASE = Side("a.yaml", quality=0.30, recall=0.40, p50_ms=3.0, p99_ms=5.0, sla_p99_ms=80, users=500)
#: Better, but 10 ms slower at p99.
SLOW = Side("b.yaml", quality=0.32, recall=0.42, p50_ms=9.0, p99_ms=15.0, sla_p99_ms=80,
            users=500)


def test_effective_quality_by_hand() -> None:
    assert effective_quality(0.32, 15.0, 5.0, 0.01) == pytest.approx(0.32 * 0.9)
    assert effective_quality(0.30, 5.0, 5.0, 0.01) == pytest.approx(0.30)  # the faster side
    assert effective_quality(0.30, 500.0, 5.0, 0.01) == 0.0  # never negative


def test_verdict_flips_when_the_penalty_makes_the_slower_candidate_worse() -> None:
    free = decide(BASE, SLOW, penalty_per_ms=0.0, overlap=0.8)
    assert free.ship
    assert free.effective_candidate == pytest.approx(0.32)
    taxed = decide(BASE, SLOW, penalty_per_ms=0.01, overlap=0.8)  # 0.32 x 0.9 = 0.288 < 0.30
    assert not taxed.ship
    assert taxed.effective_candidate == pytest.approx(0.288)
    assert taxed.effective_baseline == pytest.approx(0.30)
    assert taxed.reasons[0].startswith("FAIL: effective")
    # A small penalty keeps the candidate ahead: 0.32 x (1 - 0.005 x 10) = 0.304.
    assert decide(BASE, SLOW, penalty_per_ms=0.005, overlap=0.8).ship


def test_sla_min_gain_and_overlap_checks() -> None:
    over_sla = Side(**{**SLOW.__dict__, "sla_p99_ms": 10.0})
    verdict = decide(BASE, over_sla, penalty_per_ms=0.0, overlap=0.8)
    assert not verdict.ship
    assert [c.name for c in verdict.checks if not c.passed] == ["sla"]
    assert not decide(BASE, SLOW, penalty_per_ms=0.0, overlap=0.8, min_gain=0.10).ship
    churn = decide(BASE, SLOW, penalty_per_ms=0.0, overlap=0.3, min_overlap=0.5)
    assert not churn.ship and "70% of existing users' places change" in churn.reasons[-1]
    assert decide(BASE, SLOW, penalty_per_ms=0.0, overlap=0.6, min_overlap=0.5).ship


def test_document_and_markdown() -> None:
    verdict = decide(BASE, SLOW, penalty_per_ms=0.01, overlap=0.75)
    doc = compare_document(BASE, SLOW, verdict, overlap=0.75, source="x.csv", surface="home",
                           k=20, metric="ndcg@20", penalty_per_ms=0.01)
    assert doc["schema"] == "recserver.compare/1"
    assert doc["delta"]["p99_ms"] == pytest.approx(10.0)
    assert doc["delta"]["quality_relative"] == pytest.approx(0.32 / 0.30 - 1)
    assert doc["overlap@20"] == 0.75
    assert doc["verdict"]["ship"] is False
    text = markdown(doc)
    assert "## Verdict: do not ship" in text
    assert "| p99 ms | 5 | 15 | +10.00 |" in text


def test_cli_compares_two_configs(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("surfaces:\n  home: {walk: {steps: 1000}, fallback: {tiers: [popular]}}\n")
    b.write_text("surfaces:\n  home: {walk: {steps: 8000}, fallback: {tiers: [popular]}}\n")
    out = tmp_path / "c.json"
    code = main(["compare", "--baseline", str(a), "--candidate", str(b), "--synthetic", "8000",
                 "--max-users", "20", "--out", str(out), "--min-overlap", "0.0"])
    assert code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"# Compare: `{a}` -> `{b}`")
    assert "## Verdict:" in text
    doc = json.loads(out.read_text())
    assert doc["baseline"]["users"] == doc["candidate"]["users"] == 20
    assert 0.0 <= doc["overlap@20"] <= 1.0
    assert [c["name"] for c in doc["verdict"]["checks"]] == ["effective_quality", "sla",
                                                              "overlap"]
