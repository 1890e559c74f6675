"""The ship decision between two configs: quality, tail latency, churn, and a verdict.

``effective quality = quality x max(0, 1 - penalty_per_ms x extra p99 ms)``, where the extra
milliseconds are counted against the faster of the two, so the faster side keeps its quality
and the slower pays for each millisecond it adds. The candidate ships when

1. its effective quality beats the baseline's by more than ``min_gain`` (relative),
2. its p99 stays within its surface's ``sla_p99_ms``, and
3. (when ``min_overlap`` is set) ``overlap@k`` between the two answers for the same users is
   at least ``min_overlap``: a better model that reshuffles everything breaks users' habits.

Every check is reported with its numbers, passed or not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from recserver.eval import report


@dataclass(frozen=True)
class Side:
    """One config's measurements on the shared test users."""

    label: str  # the config file
    quality: float  # the verdict's metric (e.g. ndcg@20)
    recall: float
    p50_ms: float
    p99_ms: float
    sla_p99_ms: float
    users: int
    sources: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    ship: bool
    effective_baseline: float
    effective_candidate: float
    checks: list[Check]

    @property
    def reasons(self) -> list[str]:
        return [f"{'pass' if c.passed else 'FAIL'}: {c.detail}" for c in self.checks]


def effective_quality(quality: float, p99_ms: float, reference_p99_ms: float,
                      penalty_per_ms: float) -> float:
    """``quality`` less ``penalty_per_ms`` of itself for every ms of p99 above the reference."""
    extra = max(0.0, p99_ms - reference_p99_ms)
    return quality * max(0.0, 1.0 - penalty_per_ms * extra)


def decide(
    baseline: Side, candidate: Side, *, penalty_per_ms: float, overlap: float,
    min_gain: float = 0.0, min_overlap: float | None = None, metric: str = "quality",
) -> Verdict:
    """The ship / don't-ship verdict and the checks behind it."""
    fastest = min(baseline.p99_ms, candidate.p99_ms)
    eff_b = effective_quality(baseline.quality, baseline.p99_ms, fastest, penalty_per_ms)
    eff_c = effective_quality(candidate.quality, candidate.p99_ms, fastest, penalty_per_ms)
    gain = report.ratio(eff_c, eff_b) - 1.0 if eff_b > 0 else (1.0 if eff_c > 0 else 0.0)
    checks = [
        Check("effective_quality", eff_c > eff_b and gain > min_gain,
              f"effective {metric} {eff_c:.4f} vs baseline {eff_b:.4f} ({gain:+.1%}; needs "
              f"> {min_gain:+.1%}) with a penalty of {penalty_per_ms:.1%} per extra p99 ms "
              f"(raw {candidate.quality:.4f} vs {baseline.quality:.4f}, p99 "
              f"{candidate.p99_ms:.2f} vs {baseline.p99_ms:.2f} ms)"),
        Check("sla", candidate.p99_ms <= candidate.sla_p99_ms,
              f"candidate p99 {candidate.p99_ms:.2f} ms within its SLA of "
              f"{candidate.sla_p99_ms:g} ms" if candidate.p99_ms <= candidate.sla_p99_ms else
              f"candidate p99 {candidate.p99_ms:.2f} ms exceeds its SLA of "
              f"{candidate.sla_p99_ms:g} ms"),
    ]
    if min_overlap is not None:
        checks.append(Check("overlap", overlap >= min_overlap,
                            f"overlap@k {overlap:.2f} (needs >= {min_overlap:.2f}): "
                            f"{1 - overlap:.0%} of existing users' places change"))
    return Verdict(all(c.passed for c in checks), eff_b, eff_c, checks)


def compare_document(
    baseline: Side, candidate: Side, verdict: Verdict, *, overlap: float, source: str,
    surface: str, k: int, metric: str, penalty_per_ms: float,
) -> dict[str, Any]:
    """The compare JSON document (schema in ``docs/evaluation.md``)."""
    return {
        "schema": report.COMPARE_SCHEMA,
        "source": source,
        "surface": surface,
        "k": k,
        "metric": metric,
        "penalty_per_ms": penalty_per_ms,
        "baseline": asdict(baseline),
        "candidate": asdict(candidate),
        "delta": {
            "quality": candidate.quality - baseline.quality,
            "quality_relative": report.finite(report.ratio(candidate.quality,
                                                           baseline.quality) - 1.0),
            "recall": candidate.recall - baseline.recall,
            "p99_ms": candidate.p99_ms - baseline.p99_ms,
        },
        f"overlap@{k}": overlap,
        "effective": {"baseline": verdict.effective_baseline,
                      "candidate": verdict.effective_candidate},
        "verdict": {"ship": verdict.ship, "reasons": verdict.reasons,
                    "checks": [asdict(c) for c in verdict.checks]},
    }


def markdown(doc: dict[str, Any]) -> str:
    """The compare document for people (GitHub-flavoured markdown)."""
    b, c, k, metric = doc["baseline"], doc["candidate"], doc["k"], doc["metric"]
    rows = [
        [metric, b["quality"], c["quality"], f"{c['quality'] - b['quality']:+.4f}"],
        [f"recall@{k}", b["recall"], c["recall"], f"{c['recall'] - b['recall']:+.4f}"],
        ["p50 ms", b["p50_ms"], c["p50_ms"], f"{c['p50_ms'] - b['p50_ms']:+.2f}"],
        ["p99 ms", b["p99_ms"], c["p99_ms"], f"{c['p99_ms'] - b['p99_ms']:+.2f}"],
        [f"effective {metric} ({doc['penalty_per_ms']:.1%}/ms)", doc["effective"]["baseline"],
         doc["effective"]["candidate"],
         f"{doc['effective']['candidate'] - doc['effective']['baseline']:+.4f}"],
    ]
    verdict = doc["verdict"]
    lines = [
        f"# Compare: `{b['label']}` -> `{c['label']}`",
        "",
        f"Surface `{doc['surface']}`, k={k}, {b['users']:,} test users of {doc['source']}.",
        "",
        report.markdown_table(rows, ["", "baseline", "candidate", "delta"]),
        "",
        f"overlap@{k} between the two answers for the same users: "
        f"**{doc[f'overlap@{k}']:.2f}** ({1 - doc[f'overlap@{k}']:.0%} of places change).",
        "",
        f"## Verdict: {'ship' if verdict['ship'] else 'do not ship'}",
        "",
    ]
    lines += [f"- {reason}" for reason in verdict["reasons"]]
    return "\n".join(lines)
