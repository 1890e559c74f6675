"""Docs and docstrings stand on their own and match the code they describe."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from recserver.ann.config import AnnConfig
from recserver.ann.file_cache import FileCache
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


#: A cell holding a measured figure: a number with a unit of time, size, rate or share, or a
#: number with decimals (a recall, a latency in a column that names its unit).
MEASURED = re.compile(r"\d(?:[\d.,]*)\s?(?:ms|s|µs|us|MiB|GiB|KiB|B/edge|B/id|M/s|/s|%|x)(?!\w)"
                      r"|\b\d+\.\d+\b")
RUN_DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")


def figure_tables(text: str) -> list[tuple[int, str, str]]:
    """(line, table, the text of its section before it) for each markdown table outside code
    blocks where most rows hold a measured figure past their first cell (not a table of
    settings, defaults or descriptions)."""
    lines = text.splitlines()
    found, section, in_code, i = [], [], False, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and line.startswith("#"):
            section = []
        if not in_code and line.startswith("|"):
            end = i
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            rows = [row.strip("|").split("|")[1:] for row in lines[i + 2:end]]
            if sum(bool(MEASURED.search("|".join(cells))) for cells in rows) * 2 > len(rows):
                found.append((i + 1, "\n".join(lines[i:end]), "\n".join(section)))
            section += lines[i:end]
            i = end
            continue
        section.append(line)
        i += 1
    return found


def test_every_table_of_measured_figures_names_the_date_of_its_run() -> None:
    # A date in the table, in its section's text above it, or in the page's status note (a
    # blockquote: a page filled from one run). The machine is described once per page (its
    # "Machine" section) and linked from the others.
    missing = []
    for name in ("evaluation.md", "scaling.md", "performance.md"):
        text = (REPO / "docs" / name).read_text()
        if "## Machine" not in text and "performance.md#machine" not in text:
            missing.append(f"docs/{name}: no machine")
        status = "\n".join(line for line in text.splitlines() if line.startswith(">"))
        tables = figure_tables(text)
        assert tables, name  # the pattern still recognises the page's figure tables
        missing += [f"docs/{name}:{line}: no date" for line, table, before in tables
                    if not RUN_DATE.search(table + before + status)]
    assert missing == []


def test_the_docs_describe_single_process_and_its_lru_as_the_code_does() -> None:
    serve = next(a for a in build_parser()._actions if a.dest == "command").choices["serve"]
    flag = next(a for a in serve._actions if "--single-process" in a.option_strings)
    assert "not what ships" in (flag.help or "") and "baseline" in (flag.help or "")
    lru_help = AnnConfig.model_fields["lru_max_mb"].description or ""
    assert "--single-process" in lru_help
    readme = " ".join((REPO / "README.md").read_text().split())
    assert ("`serve --single-process` runs everything in one process (no builder or workers): "
            "not what ships, kept as the baseline") in readme
    assert ("Only `--single-process` keeps all results in an in-process LRU, sized by "
            "`ann.lru_max_mb`") in readme
    assert "private LRU (8 MiB)" in readme
    assert FileCache.__init__.__kwdefaults__["local_max_bytes"] == 8 << 20
    for path in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        text = " ".join(path.read_text().split())
        assert "older one-process server" not in text, path.name
