"""The command line as a whole: version, description, -v anywhere, help, build --config."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from recserver import __version__
from recserver.cli import build_parser, main

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "config.example.yaml"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"recserver {__version__}"


def test_top_level_help_describes_the_program(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["-h"])
    out = capsys.readouterr().out
    assert "real-time recommendations from a live behavioural graph" in out
    assert "recserver serve" in out and "COMMAND -h" in out


@pytest.mark.parametrize("argv", [[], ["-v"]])
def test_no_command_shows_the_help_with_where_to_start(argv: list[str]) -> None:
    # The console entry point, as typed: no argparse one-liner, the whole help on stdout.
    done = subprocess.run([sys.executable, "-m", "recserver", *argv], capture_output=True,
                          text=True, timeout=60, cwd=EXAMPLE.parents[1])
    assert done.returncode == 2  # a usage error still (see recserver.cli.main)
    assert "required" not in done.stderr and "error" not in done.stderr, done.stderr
    out = done.stdout
    assert out.startswith("usage: recserver")
    start = out[out.index("start here:"):]
    assert start.index("recserver serve") < start.index("recserver recommend")
    assert '"recserver COMMAND -h"' in start


@pytest.mark.parametrize(("argv", "verbose"), [
    (["-v", "check-config", "x.yaml"], True),
    (["check-config", "x.yaml", "-v"], True),
    (["check-config", "--verbose", "x.yaml"], True),
    (["check-config", "x.yaml"], False),
])
def test_verbose_before_or_after_the_subcommand(argv: list[str], verbose: bool) -> None:
    assert build_parser().parse_args(argv).verbose is verbose


def options(parser: argparse.ArgumentParser, name: str = "recserver"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                yield from options(sub, command)
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield name, action


def test_every_option_has_help_and_says_its_default() -> None:
    missing = []
    for command, action in options(build_parser()):
        text = action.help or ""
        has_default = action.default not in (None, False, argparse.SUPPRESS) and not isinstance(
            action, argparse._StoreTrueAction)
        if not text or (has_default and "default" not in text):
            missing.append(f"{command} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_build_reads_the_graph_section_of_a_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("surfaces: {home: {}}\n"
                      "graph: {event_weights: {types: {view: 1.0}, default: null}}\n")
    assert main(["build", "--synthetic", "3000", "--config", str(config)]) == 0
    only_views = capsys.readouterr().out
    assert main(["build", "--synthetic", "3000"]) == 0
    every_type = capsys.readouterr().out
    assert "0 rejected" in every_type
    assert "0 rejected" not in only_views  # clicks, carts and purchases have no weight there


def test_build_saves_nothing_that_no_command_could_serve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A node starts from DATA_DIR's checkpoints; a bare snapshot folder had no reader.
    with pytest.raises(SystemExit) as refused:
        main(["build", "--synthetic", "3000", "--out", str(tmp_path / "snap")])
    assert refused.value.code == 2 and "--out" in capsys.readouterr().err
    assert not (tmp_path / "snap").exists()
