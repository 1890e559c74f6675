"""``recserver evaluate``: every strategy on a small synthetic split, the JSON schema, the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

from recserver.cli import main
from recserver.config import BlendConfig, config_from_document
from recserver.eval.evaluate import STRATEGIES, EvalOptions, evaluate, format_document
from recserver.eval.evaluate_summary import same_answers, verdict, why_same
from recserver.eval.split import temporal_split
from recserver.graph.synthetic import generate
from tests.process_output import REPO

RECORD_KEYS = {"strategy", "description", "users", "answers", "recall@10", "ndcg@10", "hit_rate@10",
               "mrr@10",
               "coverage", "popularity_bias", "distinct_top5", "list_popularity", "p50_ms",
               "p99_ms", "mean_ms", "sources"}


@pytest.fixture(scope="module")
def document() -> dict:
    config = config_from_document({
        "surfaces": {"home": {"budget_ms": 50, "walk": {"steps": 5_000}, "fallback": {
            "tiers": ["ann", "popular"]}}},
        "ann": {"embeddings": {"dim": 8}},
    })
    split = temporal_split(generate(20_000, seed=1), test_fraction=0.2, max_users=40)
    opts = EvalOptions(k=10, pagerank_users=3, warmup=1, repeats=2)
    return evaluate(config, split, opts, source="synthetic:20000")


def test_every_strategy_gets_a_record_with_its_metric_keys(document: dict) -> None:
    assert document["schema"] == "recserver.evaluate/1"
    assert [r["strategy"] for r in document["strategies"]] == list(STRATEGIES)
    for record in document["strategies"]:
        assert set(record) == RECORD_KEYS
        assert 0.0 <= record["recall@10"] <= 1.0
        assert 0.0 <= record["coverage"] <= 1.0
        assert record["p99_ms"] >= record["p50_ms"] >= 0.0
    by_name = {r["strategy"]: r for r in document["strategies"]}
    assert by_name["nx_pagerank"]["users"] == 3
    assert by_name["graph"]["users"] == 40
    assert by_name["graph"]["answers"] == 80  # two repeats of a stochastic strategy
    assert by_name["popular"]["answers"] == 40  # deterministic: asked once
    assert by_name["popular"]["sources"] == {"popular": 40}
    # On clustered synthetic data the walk beats popularity by far.
    assert by_name["graph"]["recall@10"] > by_name["popular"]["recall@10"]
    assert json.loads(json.dumps(document)) == document  # plain JSON: no NaN or infinity


def test_targets_and_the_table(document: dict) -> None:
    names = [t["name"] for t in document["targets"]]
    assert names == ["graph recall@10 / popular", "budgeted recall@10 / unbounded walk",
                     "serving path recall@10 / best of ItemKNN, RP3beta, ALS",
                     "serving path recall@10 / EASE (goal)", "ANN tier recall@10 / ALS",
                     "blended recall@10 / max(walk, ANN)", "serving path p99 ms"]
    # PageRank's speed ratio is context, not a promise: never reported as met or missed.
    assert [t["name"] for t in document["information"]] == ["nx PageRank time / walk time"]
    for target in document["targets"] + document["information"]:
        assert set(target) == {"name", "value", "threshold", "met", "detail", "op"}
    text = format_document(document)
    assert "graph_budget" in text and "targets" in text
    assert "[   info] nx PageRank time / walk time" in text
    assert "NOT met] nx PageRank" not in text and "met] nx PageRank" not in text
    assert document["verdict"].startswith("verdict: served answers (graph_budget) reach ")
    assert text.splitlines()[-1] == document["verdict"]


def test_baselines_report_their_chosen_settings(document: dict) -> None:
    for name in ("ease", "itemknn", "rp3beta", "als"):
        chosen = document["baselines"][name]
        assert chosen["chosen"] in [v["params"] for v in chosen["validation"]]
        best = max(v["recall@10"] for v in chosen["validation"])
        assert next(v["recall@10"] for v in chosen["validation"]
                if v["params"] == chosen["chosen"]) == best
    by_name = {r["strategy"]: r for r in document["strategies"]}
    # On clustered synthetic data every standard baseline beats popularity.
    for name in ("ease", "itemknn", "rp3beta", "als"):
        assert by_name[name]["recall@10"] > by_name["popular"]["recall@10"]
        assert by_name[name]["users"] == 40 and by_name[name]["answers"] == 40
    # Popularity gives everyone the same top 5; a personalised baseline does not.
    assert by_name["popular"]["distinct_top5"] < by_name["itemknn"]["distinct_top5"]
    assert by_name["popular"]["list_popularity"] > by_name["itemknn"]["list_popularity"]


def test_ease_is_skipped_above_its_catalogue_limit_with_the_reason() -> None:
    config = config_from_document({"surfaces": {"home": {}}})
    split = temporal_split(generate(5_000, seed=1), test_fraction=0.2, max_users=5)
    doc = evaluate(config, split, EvalOptions(strategies=["ease", "popular"], ease_max_items=3,
                                              warmup=0))
    assert [r["strategy"] for r in doc["strategies"]] == ["popular"]
    assert doc["skipped"][0]["strategy"] == "ease"
    assert "EASE inverts" in doc["skipped"][0]["reason"]
    assert "skipped: catalogue of" in format_document(doc)


def test_unknown_strategy_is_an_error() -> None:
    config = config_from_document({"surfaces": {"home": {}}})
    split = temporal_split(generate(5_000, seed=1), test_fraction=0.2, max_users=5)
    with pytest.raises(ValueError, match="unknown strategies"):
        evaluate(config, split, EvalOptions(strategies=["graph", "magic"]))


def test_cli_prints_the_json_document(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    out = tmp_path / "eval.json"
    code = main(["evaluate", "--synthetic", "8000", "--max-users", "10", "-k", "10",
                 "--strategies", "popular,graph", "--steps", "2000", "--format", "json",
                 "--out", str(out)])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads(out.read_text())
    assert [r["strategy"] for r in doc["strategies"]] == ["popular", "graph"]
    assert "2,000 steps" in doc["strategies"][1]["description"]


def test_cli_reads_the_same_csv_as_serve(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    path = tmp_path / "events.csv"
    rows = ["user_id,item_id,event,weight,timestamp"]
    for u in range(30):
        for n, item in enumerate((f"a{u % 5}", f"b{u % 3}", f"c{(u + 1) % 5}", f"d{u % 4}")):
            rows.append(f"u{u},{item},purchase,1,{1_700_000_000 + n * 1000 + u}")
    path.write_text("\n".join(rows) + "\n")
    code = main(["evaluate", "--events", str(path), "--test-fraction", "0.3",
                 "--strategies", "popular,graph", "--steps", "1000", "-k", "5"])
    assert code == 0
    text = capsys.readouterr().out
    assert "graph recall@5 / popular" in text


def test_blend_is_chosen_on_the_training_period_with_both_inputs_in_the_grid(
        document: dict) -> None:
    blend = document["blend"]
    grid = blend["validation"]
    # The walk alone (share 1) and the ANN alone (share 0) are candidates, so on validation
    # the chosen blend is at least as good as either input.
    assert {0.0, 1.0} <= {v["share"] for v in grid}
    best = max(v["recall@10"] for v in grid)
    chosen = next(v for v in grid if v["mode"] == blend["mode"] and v["share"] == blend["share"])
    assert chosen["recall@10"] == best
    by_name = {r["strategy"]: r for r in document["strategies"]}
    assert f"walk share {blend['share']:g}" in by_name["blended"]["description"]


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """``recserver`` in its own process: logging is configured as a user's shell gets it."""
    return subprocess.run([sys.executable, "-m", "recserver", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)


def test_cli_ends_in_one_verdict_and_logs_only_warnings_unless_verbose() -> None:
    argv = ["evaluate", "--synthetic", "3000", "--max-users", "15", "-k", "10",
            "--strategies", "popular,graph_budget,blended,itemknn", "--no-tune-baselines",
            # the blend the serving path pools a complete walk with, and a budget no walk hits
            "--blend-mode", "rank", "--blend-share", "0.5", "--budget-ms", "5000"]
    quiet = run_cli(*argv)
    assert quiet.returncode == 0, quiet.stderr
    assert " INFO " not in quiet.stderr
    lines = [line for line in quiet.stdout.splitlines() if line.strip()]
    verdicts = [line for line in lines if "verdict" in line.lower()]
    assert verdicts == [lines[-1]]
    assert lines[-1].startswith("verdict: served answers (graph_budget) reach ")
    assert "of the best baseline itemknn's recall@10" in lines[-1]
    # --no-tune-baselines: the baseline's description and summary say it was not tuned, with
    # no validation recall (there is none: not a "nan").
    assert re.search(r"itemknn +itemknn \(.*; not tuned: the first point of its grid;",
                     quiet.stdout)
    assert "not tuned (--no-tune-baselines)" in quiet.stdout
    assert re.search(r"\bnan\b", quiet.stdout, re.IGNORECASE) is None
    # The two equal rows are explained, not left for the reader to puzzle over.
    assert re.search(r"blended +same answers as graph_budget for all 15 users: the serving "
                     r"path already pools a complete walk", quiet.stdout)
    verbose = run_cli(*argv, "-v")
    assert verbose.returncode == 0 and " INFO recserver.eval.evaluate: evaluating" in verbose.stderr


def test_same_answers_pairs_each_strategy_with_the_first_it_repeats() -> None:
    @dataclass
    class Answers:
        answers: dict[str, list[str]]

    results = {"graph": Answers({"u1": ["a", "b"], "u2": ["c"]}),
               "graph_budget": Answers({"u1": ["a", "b"], "u2": ["d"]}),
               "blended": Answers({"u1": ["a", "b"], "u2": ["c"]}),
               "ann": Answers({"u1": ["a", "b"]})}  # fewer users: never the same
    assert same_answers(results) == [("blended", "graph")]
    blend = BlendConfig(mode="slots", pool_complete_walk=0.5)
    assert "walk share 1" in why_same(("blended", "graph"), blend, 60.0, {"share": 1.0})
    pooled = why_same(("blended", "graph_budget"), blend, 60.0, {"mode": "rank", "share": 0.5})
    assert "rank fusion, walk share 0.5" in pooled and "60 ms budget cut no walk" in pooled
    cut = why_same(("blended", "graph_budget"), blend, 60.0, {"mode": "rank", "share": 0.5}, 3)
    assert "cut no walk" not in cut


def test_verdict_is_against_ease_when_it_ran_and_names_the_best_baseline() -> None:
    def rec(name: str, recall: float) -> dict:
        return {"strategy": name, "recall@20": recall}

    both = verdict([rec("graph_budget", 0.12), rec("ease", 0.15), rec("itemknn", 0.16)],
                   20, 3, 7)
    assert both == ("verdict: served answers (graph_budget) reach 80% of EASE recall@20 "
                    "(0.1200 vs 0.1500); best baseline itemknn 0.1600 (75%); 3 of 7 targets met")
    walk_only = verdict([rec("popular", 0.05), rec("graph", 0.10)], 20, 0, 0)
    assert walk_only == ("verdict: the walk alone (graph) reaches 2.00x popular's recall@20 "
                         "(0.1000 vs 0.0500); no baseline ran")
