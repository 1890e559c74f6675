"""``recserver tune`` refuses impossible grids up front, writes only what it is asked to, and
recommends the same setting from the same inputs in every process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recserver.cli import main

SMALL = ["--surface", "home", "--synthetic", "8000", "--max-users", "40", "--steps", "300,1000",
         "--n-v", "4", "--budgets", "40", "--metric", "ndcg", "--format", "json"]


@pytest.mark.parametrize(("grid", "message"), [
    (["--budgets", "0,-1"], "--budgets '0,-1': 0, -1 cannot be measured; give values > 0"),
    (["--budgets", "nan"], "--budgets 'nan': nan cannot be measured"),
    (["--steps", "0"], "--steps '0': 0 cannot be measured; give values >= 1"),
    (["--n-v", ""], "--n-v '': nothing cannot be measured"),
    (["--budgets", "1,5"], "--budgets: cannot run surface home at 1 ms"),  # reserve floor 2 ms
])
def test_an_impossible_grid_exits_2_before_loading_data(
    grid: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The event file does not exist: reaching it would be a different error.
    code = main(["tune", "--surface", "home", "--events", str(tmp_path / "none.csv"), *grid])
    assert code == 2
    assert message in capsys.readouterr().err


def test_no_plot_file_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["tune", *SMALL]) == 0
    assert json.loads(capsys.readouterr().out)["plot"] is None
    assert list(tmp_path.iterdir()) == []


def test_a_plot_that_cannot_be_drawn_fails_before_the_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    code = main(["tune", "--surface", "home", "--events", str(tmp_path / "none.csv"),
                 "--plot", str(tmp_path / "t.png")])
    assert code == 2
    assert "pip install -e '.[plots]'" in capsys.readouterr().err
    assert not (tmp_path / "t.png").exists()


def run_tune(cwd: Path, hash_seed: str, *extra: str) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run([sys.executable, "-m", "recserver.cli", "tune", *SMALL, *extra],
                          env=env, capture_output=True, text=True, timeout=300, check=True,
                          cwd=cwd)
    return json.loads(done.stdout)


def test_two_runs_measure_the_same_quality_and_recommend_the_same_setting(
    tmp_path: Path,
) -> None:
    # Different hash salts: the walks' random numbers must not depend on the process.
    first, second = run_tune(tmp_path, "1"), run_tune(tmp_path, "2")
    assert [p["quality"] for p in first["points"]] == [p["quality"] for p in second["points"]]
    pick = ("budget_ms", "steps", "n_v", "quality")
    assert [first["recommendation"][k] for k in pick] == [
        second["recommendation"][k] for k in pick]
    # --seed changes the random numbers (and the user sample).
    other = run_tune(tmp_path, "1", "--seed", "7")
    assert [p["quality"] for p in other["points"]] != [p["quality"] for p in first["points"]]
