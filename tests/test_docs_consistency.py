"""Docs and docstrings stand on their own and match the code they describe."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from recserver.cli import build_parser
from recserver.config import ServerSection
from recserver.core import errors
from recserver.eventlog.config import CheckpointConfig
from recserver.graph.config import EventWeightsConfig
from recserver.node.commands import DEFAULT_DATA_DIR
from recserver.service import fallback

REPO = Path(__file__).resolve().parents[1]
#: Citations of things a reader of the repository does not have: the issue tracker's numbers
#: and the project's private design notes.
CITATION = re.compile(r"\b[Ii]ssue[ -]?#?\d+\b|\bDESIGN\.md\b")


def tracked_text_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout.split()
    keep = (".py", ".md", ".yaml", ".yml", ".proto", ".toml", ".sh")
    return [REPO / p for p in out if p.endswith(keep) and not p.startswith("recserver/proto/")]


def test_no_doc_or_docstring_cites_an_issue_number_or_the_design_notes() -> None:
    me = Path(__file__).resolve()
    hits = [f"{path.relative_to(REPO)}:{n}: {line.strip()}"
            for path in tracked_text_files() if path.resolve() != me and path.exists()
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
            if CITATION.search(line)]
    assert hits == []


def test_the_limits_table_gives_the_real_walk_slot_defaults() -> None:
    row = next(line for line in (REPO / "docs" / "reliability.md").read_text().splitlines()
               if line.startswith("| concurrent walks / waiters / wait "))
    fields = ServerSection.model_fields
    assert fields["max_concurrent_walks"].default is None  # one less than the usable CPUs
    expected = (f"CPUs available - 1 (at least 1) / {fields['max_walk_waiters'].default} / "
                f"{fields['walk_slot_wait_ms'].default:g} ms")
    assert row.rstrip(" |").endswith(expected)


def test_no_unused_error_types_or_factories_are_left() -> None:
    assert not hasattr(errors, "NotFound")
    assert not hasattr(fallback, "TierFactory")


def test_the_example_config_says_which_sections_reload() -> None:
    text = (REPO / "deploy" / "config.example.yaml").read_text()
    header = text.split("\ndefaults:")[0]
    prose = " ".join(line.lstrip("#").strip() for line in header.splitlines())
    assert "What a reload changes: `defaults` and `surfaces`" in prose
    for section in ("graph:", "ann:", "ingest:", "online_quality:"):
        before = text.split("\n" + section)[0].rsplit("\n\n", 1)[-1]  # its comment block
        assert "read at start" in before.lower(), section


def test_the_readme_gives_the_real_event_types_state_and_flags() -> None:
    text = " ".join((REPO / "README.md").read_text().split())  # line breaks as spaces
    found = re.search(r"event types accepted by default are (.+?) \(edge weight multipliers "
                      r"([\d, ]+):", text)
    assert found, "the README's list of event types"
    names = re.findall(r"`(\w+)`", found.group(1))
    multipliers = [float(m) for m in found.group(2).split(", ")]
    assert dict(zip(names, multipliers, strict=True)) == EventWeightsConfig().types
    assert EventWeightsConfig().max_future_seconds == 86_400  # "(1 day) ahead"
    assert f"else `./{DEFAULT_DATA_DIR}`" in text
    checkpoints = CheckpointConfig()
    assert f"`ingest.checkpoint.interval_s` ({checkpoints.interval_s:g} s)" in text
    assert f"the newest {checkpoints.keep} are kept" in text
    serve = next(a for a in build_parser()._actions if a.dest == "command").choices["serve"]
    flags = {flag for action in serve._actions for flag in action.option_strings}
    section = text.split("## State, restarts")[1].split(" ## ")[0]
    named = set(re.findall(r"`(--[a-z-]+)`", section))
    assert "--data-dir" in named and named <= flags, named - flags
