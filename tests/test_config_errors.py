"""check-config reports every problem at once, once, with the fix and the YAML line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from recserver.cli.check_config import add_arguments as add_check_config_args
from recserver.cli.check_config import run as cmd_check_config
from recserver.config import ConfigError, load_config


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    head, *lines = str(info.value).splitlines()
    assert head == f"{path}: invalid config ({len(lines)} problem(s))"
    return [line.strip() for line in lines]


def test_every_problem_is_reported_in_one_run(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, (
        "surfaces:\n"
        "  home: {budget_ms: 90, sla_p99_ms: 60, k_max: 0}\n"
        "  search: {budget_ms: 30, sla_p99_ms: 50, walk: {steps: -1}}\n"
        "server: {port: 70000}\n"
    ))
    joined = "\n".join(problems)
    assert "surfaces.home.k_max: 0 is out of range; use a value >= 1" in joined
    # The cross-field check that the k_max error used to hide is reported too.
    assert "surfaces.home: sla_p99_ms (60.0) is below budget_ms (90.0)" in joined
    assert "surfaces.search.walk.steps: -1 is out of range" in joined
    assert "server.port: 70000 is out of range; use a value <= 65535" in joined
    assert len(problems) == 4


def test_an_error_in_defaults_is_reported_once_at_defaults(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, (
        "defaults: {k_max: 0, fallback: {tierz: [popular]}}\n"
        "surfaces: {home: {}, item_page: {}, search: {}}\n"
    ))
    assert problems == [
        "defaults.k_max: 0 is out of range; use a value >= 1 (line 1)",
        "defaults.fallback.tierz: unknown key; did you mean 'tiers'? (line 1)",
    ]


def test_a_bad_default_is_rejected_even_when_every_surface_overrides_it(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, (
        "defaults:\n"
        "  budget_ms: fast\n"
        "surfaces:\n"
        "  home: {budget_ms: 60}\n"
    ))
    assert len(problems) == 1
    assert problems[0].startswith("defaults.budget_ms: 'fast': input should be a valid number")
    assert problems[0].endswith("(line 2)")


def test_a_typo_gets_the_nearest_known_key_and_its_line(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, (
        "surfaces:\n"
        "  home:\n"
        "    budget_ms: 60\n"
        "    walk:\n"
        "      stpes: 1000\n"
        "graph:\n"
        "  publish_interval: 1\n"
    ))
    assert problems == [
        "surfaces.home.walk.stpes: unknown key; did you mean 'steps'? (line 5)",
        "graph.publish_interval: unknown key; did you mean 'publish_interval_s'? (line 7)",
    ]


def test_a_key_with_no_near_match_says_to_remove_it(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "surfaces: {home: {}}\nzzz: 1\n")
    assert problems == ["zzz: unknown key; remove it or fix its spelling (line 2)"]


def test_check_config_prints_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("surfaces:\n  home: {k_max: 0}\nserver: {prot: 1}\n")
    parser = argparse.ArgumentParser()
    add_check_config_args(parser)
    assert cmd_check_config(parser.parse_args([str(path)])) == 2
    err = capsys.readouterr().err
    assert "surfaces.home.k_max: 0 is out of range" in err
    assert "server.prot: unknown key; did you mean 'port'? (line 3)" in err


def test_check_config_prints_every_cross_field_problem_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An unknown tier (the fallback section's check) used to hide the surface's checks, and
    # the surface's first failing check hid the next one: three runs to find three problems.
    path = tmp_path / "cross.yaml"
    path.write_text(
        "surfaces:\n"
        "  home:\n"
        "    budget_ms: 90\n"
        "    sla_p99_ms: 60\n"
        "    k_default: 200\n"
        "    fallback: {tiers: [popular, popluar]}\n"
    )
    parser = argparse.ArgumentParser()
    add_check_config_args(parser)
    assert cmd_check_config(parser.parse_args([str(path)])) == 2
    head, *problems = capsys.readouterr().err.strip().splitlines()
    assert head == f"{path}: invalid config (3 problem(s))"
    assert [p.strip() for p in problems] == [
        "surfaces.home: k_default (200) is larger than k_max (100); lower k_default or raise "
        "k_max (line 2)",
        "surfaces.home: sla_p99_ms (60.0) is below budget_ms (90.0); the server may use its "
        "whole budget, so raise sla_p99_ms or lower budget_ms (line 2)",
        "surfaces.home.fallback: tiers: unknown tier(s) 'popluar'; known tiers: ann, popular, "
        "trending (line 6)",
    ]


def test_a_cross_field_problem_does_not_hide_the_whole_files_checks(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, (
        "ann: {top_k: 50}\n"
        "surfaces:\n"
        "  home: {budget_ms: 90, sla_p99_ms: 60, fallback: {min_reserve_ms: 95}}\n"
        "  search: {fallback: {tiers: [ann, ann]}, filters: {categories: ['', 'a b']}}\n"
        "  item_page: {fallback: {tiers: [ann]}}\n"
    ))
    joined = "\n".join(problems)
    assert "surfaces.home: sla_p99_ms (60.0) is below budget_ms (90.0)" in joined
    assert "surfaces.home: fallback.min_reserve_ms (95.0) leaves no time" in joined
    assert "surfaces.search.fallback: tiers: a tier is listed twice" in joined
    assert "categories: category '' is not" in joined
    assert "categories: category 'a b' is not" in joined
    # The whole-file check runs once the surfaces' own problems are set aside.
    assert "surfaces.item_page.k_max (100) is above ann.top_k (50)" in joined
    assert len(problems) == 6
