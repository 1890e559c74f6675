"""Docs and docstrings stand on their own and match the code they describe."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from recserver.config import ServerSection
from recserver.core import errors
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
