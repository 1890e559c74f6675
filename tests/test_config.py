"""The per-surface config file: the shipped example, strict errors, defaults, check-config."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from recserver.cli.check_config import add_arguments as add_check_config_args
from recserver.cli.check_config import run as cmd_check_config
from recserver.config import DEFAULT_DOCUMENT, ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parent.parent / "deploy" / "config.example.yaml"

GOOD = """
defaults: {budget_ms: 50, sla_p99_ms: 80, k_max: 50, walk: {steps: 30000, n_v: 3}}
surfaces:
  home: {}
  search: {budget_ms: 20, sla_p99_ms: 30, walk: {steps: 5000}}
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_example_file_loads() -> None:
    config = load_config(EXAMPLE)
    assert set(config.surfaces) == {"home", "item_page", "search"}
    assert config.surfaces["item_page"].walk.steps == 60_000
    # Sections the example sets explicitly are parsed, not silently defaulted.
    assert config.surfaces["search"].fallback.topup_below_coverage == 0.7
    assert config.server.port == 50051 and config.graph.publish_interval_s == 1.0


def test_the_example_sets_every_surface_budget_within_its_sla() -> None:
    for name, surface in load_config(EXAMPLE).surfaces.items():
        assert surface.budget_ms <= surface.sla_p99_ms, name


def test_the_embedded_default_loads() -> None:
    config = load_config(None)
    assert set(config.surfaces) == set(DEFAULT_DOCUMENT["surfaces"])


def test_defaults_merge_into_every_surface_and_a_surface_overrides(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    home, search = config.surfaces["home"], config.surfaces["search"]
    assert (home.budget_ms, home.k_max, home.walk.steps, home.walk.n_v) == (50, 50, 30_000, 3)
    # Nested sections merge key by key: steps overridden, n_v still from defaults.
    assert (search.budget_ms, search.walk.steps, search.walk.n_v) == (20, 5_000, 3)
    assert search.k_max == 50


@pytest.mark.parametrize(
    ("text", "field", "fix"),
    [
        (
            "surfaces: {home: {budgett_ms: 10}}",
            "surfaces.home.budgett_ms",
            "unknown key; did you mean 'budget_ms'?",
        ),
        ("surfaces: {home: {budget_ms: 0}}", "surfaces.home.budget_ms", "use a value > 0"),
        ("surfaces: {home: {budget_ms: -5}}", "surfaces.home.budget_ms", "use a value > 0"),
        (
            "surfaces: {home: {k_default: 50, k_max: 10}}",
            "surfaces.home",
            "lower k_default or raise k_max",
        ),
        (
            "surfaces: {home: {budget_ms: 90, sla_p99_ms: 60}}",
            "surfaces.home",
            "raise sla_p99_ms or lower budget_ms",
        ),
        (
            "defaults: {budget_ms: 90, sla_p99_ms: 60}\nsurfaces: {home: {}}",
            "surfaces.home",
            "raise sla_p99_ms or lower budget_ms",
        ),
        ("surfaces: {}", "surfaces", "at least 1"),
        ("defaults: {budget_ms: 10}", "surfaces", "required; add it"),
        ("surfaces: {home: {}}\nserver: {prot: 1}", "server.prot", "unknown key"),
    ],
)
def test_bad_values_name_file_field_and_fix(
    tmp_path: Path, text: str, field: str, fix: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert f"  {field}: " in message
    assert fix in message


def test_yaml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "surfaces:\n  home: {budget_ms: 10\n  search: {}\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(path)
    assert str(path) in str(info.value) and "line" in str(info.value)


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_file_is_a_config_error(tmp_path: Path, kind: str) -> None:
    # A directory stands in for an unreadable file: tests may run as root, where chmod 000
    # would not stop the read.
    path = tmp_path / "nope.yaml" if kind == "missing" else tmp_path
    with pytest.raises(ConfigError, match="cannot read the config file") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_a_document_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- home\n- search\n"))


def run_check_config(path: Path) -> int:
    parser = argparse.ArgumentParser()
    add_check_config_args(parser)
    return cmd_check_config(parser.parse_args([str(path)]))


def test_check_config_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_check_config(EXAMPLE) == 0
    assert capsys.readouterr().out.strip() == "OK: 3 surfaces (home, item_page, search)"


def test_check_config_rejects_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = yaml.safe_load(EXAMPLE.read_text())
    document["surfaces"]["home"]["budgett_ms"] = 10
    path = write(tmp_path, yaml.safe_dump(document))
    assert run_check_config(path) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "surfaces.home.budgett_ms: unknown key" in captured.err and str(path) in captured.err


def test_check_config_of_a_missing_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_check_config(tmp_path / "missing.yaml") == 2
    assert "cannot read the config file" in capsys.readouterr().err
