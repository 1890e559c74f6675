"""The operator commands end to end against a real node with a bearer token configured:
``record`` (an event file in), ``describe-user``, ``ingest-status``, ``delete-user``."""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from recserver.cli import main
from tests.ingest_servers import Server, write_ingest_config

TOKEN = "admin-cli-token-0123456789"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    root = tmp_path_factory.mktemp("admin")
    token = root / "token"
    token.write_text(TOKEN + "\n")
    config = write_ingest_config(root / "config.yaml")
    doc = yaml.safe_load(config.read_text())
    doc["server"]["auth"] = {"token_file": str(token)}
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    server = Server(config, "--data-dir", str(root / "data"), "--workers", "1")
    try:
        server.wait_serving()
        yield server, token
    finally:
        server.kill()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_record_sends_a_file_and_reports_every_rejected_line(
    node: tuple[Server, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, token = node
    events = tmp_path / "events.csv"
    t = int(time.time()) - 60  # inside the dedup window, so a second send is a duplicate
    events.write_text(
        "user_id,item_id,event,weight,timestamp,event_id\n"
        f"cli-a,cli-x,purchase,1,{t},c1\n"
        f"cli-a,cli-y,view,2,{t + 1},c2\n"
        f",cli-x,view,1,{t + 2},c3\n"             # line 4: no user
        f"cli-b,cli-x,view,heavy,{t + 3},c4\n"    # line 5: not a number
        f"cli-b,cli-x,view,1,{t + 4},c5\n")
    auth = ["--target", server.address, "--token-file", str(token)]
    code, out, _ = run(capsys, "record", str(events), "--batch", "2", "--wait", "30", *auth)
    assert code == 1  # some rows were not taken
    assert "sent 4 events" in out and "in 2 calls" in out
    assert "3 accepted, 0 duplicates, 1 rejected" in out and "1 rows unreadable" in out
    assert "line 4: empty user_id" in out and "line 5:" in out
    assert "visible on" in out
    # Again: every event is a duplicate now (the file has event ids), nothing applied twice.
    code, out, _ = run(capsys, "record", str(events), *auth)
    assert "0 accepted, 3 duplicates" in out

    code, out, _ = run(capsys, "describe-user", "--user", "cli-a", *auth)
    assert code == 0 and "cli-x" in out and "cli-y" in out
    code, out, _ = run(capsys, "describe-user", "--user", "cli-a", "--json", *auth)
    described = json.loads(out)
    assert described["found"] and {e["item_id"] for e in described["edges"]} == {"cli-x",
                                                                                   "cli-y"}
    code, out, _ = run(capsys, "ingest-status", "--json", *auth)
    status = json.loads(out)
    assert code == 0 and status["backend"] == "file" and status["ready"]
    code, out, _ = run(capsys, "ingest-status", *auth)
    assert code == 0 and "visible_position" in out and "last_error" in out


def test_delete_user_erases_and_waits_until_the_replica_shows_it(
    node: tuple[Server, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, token = node
    auth = ["--target", server.address, "--token-file", str(token)]
    events = tmp_path / "events.jsonl"
    events.write_text('{"user_id": "cli-d", "item_id": "cli-z", "event": "view", "weight": 1, '
                      f'"timestamp": {time.time() - 5:.3f}, "event_id": "d1"}}\n')
    code, out, _ = run(capsys, "record", str(events), "--wait", "30", *auth)
    assert code == 0 and "1 accepted" in out
    code, out, _ = run(capsys, "describe-user", "--user", "cli-d", *auth)
    assert code == 0 and "cli-z" in out
    code, out, err = run(capsys, "delete-user", "--user", "cli-d", "--wait", "30", *auth)
    assert code == 0, err
    assert "erasure of 'cli-d' recorded at log position" in out
    assert "(was in this replica's graph)" in out and "visible on" in out
    code, out, _ = run(capsys, "describe-user", "--user", "cli-d", *auth)
    assert code == 1 and "not in the graph" in out
    code, out, _ = run(capsys, "delete-user", "--user", "cli-d", *auth)
    assert code == 0 and "was not in this replica's graph; recorded all the same" in out


def test_bad_and_unauthenticated_calls_exit_2_with_the_fix(
    node: tuple[Server, Path], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, token = node
    monkeypatch.delenv("RECSERVER_TOKEN", raising=False)
    code, _, err = run(capsys, "delete-user", "--user", "cli-a", "--target", server.address)
    assert code == 2 and "UNAUTHENTICATED" in err and "needs a bearer token" in err
    code, _, err = run(capsys, "delete-user", "--user", "", "--target", server.address,
                       "--token-file", str(token))
    assert code == 2 and "INVALID_ARGUMENT" in err and "user_id is empty" in err
    monkeypatch.setenv("RECSERVER_TOKEN", TOKEN)  # the token from the environment works too
    code, out, _ = run(capsys, "ingest-status", "--target", server.address)
    assert code == 0 and "backend" in out
    code, _, err = run(capsys, "record", str(Path("no-such-file.csv")), "--target",
                       server.address)
    assert code == 2 and "no-such-file.csv" in err


def test_record_lists_rejected_rows_in_file_order_and_every_one_on_request(
    node: tuple[Server, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, token = node
    auth = ["--target", server.address, "--token-file", str(token)]
    t = int(time.time()) - 60
    # 8 bad rows among good ones, some unreadable in the file (never sent), the others refused
    # by the server, spread over several calls (--batch 3).
    rows = ["user_id,item_id,event,weight,timestamp,event_id"]
    bad_lines = []
    for k in range(12):
        line = len(rows) + 1
        if k % 3 == 0:
            rows.append(f"rj-u{k},rj-i{k},view,1,{t + k},rj{k}")
        elif k % 2:
            rows.append(f"rj-u{k},rj-i{k},view,heavy,{t + k},rj{k}")  # not a number
            bad_lines.append(line)
        else:
            rows.append(f",rj-i{k},view,1,{t + k},rj{k}")  # no user: the server refuses it
            bad_lines.append(line)
    events = tmp_path / "events.csv"
    events.write_text("\n".join(rows) + "\n")
    assert len(bad_lines) == 8

    code, out, _ = run(capsys, "record", str(events), "--batch", "3", "--show-rejected", "5",
                       *auth)
    assert code == 1
    listed = [int(m) for m in re.findall(r"^  line (\d+): ", out, re.MULTILINE)]
    assert listed == bad_lines[:5]
    assert "... and 3 more (use --show-all-rejected or --rejected-out FILE)" in out

    out_file = tmp_path / "rejected.csv"
    code, out, _ = run(capsys, "record", str(events), "--batch", "3", "--show-all-rejected",
                       "--rejected-out", str(out_file), *auth)
    listed = [int(m) for m in re.findall(r"^  line (\d+): ", out, re.MULTILINE)]
    assert listed == bad_lines and "more" not in out
    with out_file.open(newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [int(r["line"]) for r in written] == bad_lines
    assert all(r["reason"] for r in written)
    assert {r["reason"] for r in written if int(r["line"]) == bad_lines[1]} == {"empty user_id"}


def test_record_prints_the_first_20_rejected_rows_by_default(
    node: tuple[Server, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, token = node
    events = tmp_path / "events.csv"
    t = int(time.time()) - 60
    events.write_text("user_id,item_id,event,weight,timestamp\n"
                      + "".join(f",dflt-{k},view,1,{t}\n" for k in range(25)))
    code, out, _ = run(capsys, "record", str(events), "--target", server.address,
                       "--token-file", str(token))
    assert code == 1 and "25 rejected" in out
    listed = [int(m) for m in re.findall(r"^  line (\d+): empty user_id", out, re.MULTILINE)]
    assert listed == list(range(2, 22))
    assert "... and 5 more" in out


def test_items_hide_wait_state_and_unhide(
    node: tuple[Server, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, token = node
    auth = ["--target", server.address, "--token-file", str(token)]
    events = tmp_path / "events.csv"
    events.write_text("user_id,item_id,event,weight,timestamp,event_id\n"
                      f"st-u,st-x,view,1,{int(time.time()) - 5},st1\n")
    assert run(capsys, "record", str(events), "--wait", "30", *auth)[0] == 0

    def state(*ids: str) -> tuple[int, dict[str, dict[str, object]]]:
        code, out, err = run(capsys, "items", "state", *ids, "--json", *auth)
        assert code in (0, 1), err
        return code, {s["item_id"]: s for s in json.loads(out)["items"]}

    code, states = state("st-x")
    assert code == 0
    assert states["st-x"] == {"item_id": "st-x", "found": True, "hidden": False,
                              "expires_at": 0.0, "categories": [], "degree": 1}
    # --wait returns once the replica serves the change: the next read shows it, no polling.
    code, out, err = run(capsys, "items", "hide", "st-x", "--wait", "30", *auth)
    assert code == 0 and "1 items applied" in out and "visible on" in out, err
    assert state("st-x")[1]["st-x"]["hidden"] is True
    code, out, err = run(capsys, "items", "unhide", "st-x", "--wait", "30", *auth)
    assert code == 0 and "visible on" in out, err
    assert state("st-x")[1]["st-x"]["hidden"] is False
    code, out, _ = run(capsys, "items", "update", "st-x", "--categories", "sale", "shoes",
                       "--expires-at", "1", "--wait", "30", *auth)
    assert code == 0 and "visible on" in out
    code, out, _ = run(capsys, "items", "state", "st-x", "st-unknown", *auth)
    assert code == 1  # one item is not in the graph
    [header, x, unknown] = out.splitlines()[:3]
    assert header.split() == ["item", "found", "hidden", "expires", "edges", "categories"]
    assert x.split() == ["st-x", "yes", "no", "1970-01-01T00:00:01Z", "(expired)", "1",
                         "sale,shoes"]
    assert unknown.split()[:2] == ["st-unknown", "no"]
    # The old name still works, and says which to use.
    code, out, err = run(capsys, "items", "show", "st-x", *auth)
    assert code == 0 and "'items show' is deprecated; use 'items unhide'" in err


def test_items_state_refuses_too_many_ids_and_calls_without_the_token(
    node: tuple[Server, Path], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, token = node
    monkeypatch.delenv("RECSERVER_TOKEN", raising=False)
    ids = [f"many-{k}" for k in range(1001)]
    code, _, err = run(capsys, "items", "state", *ids, "--target", server.address,
                       "--token-file", str(token))
    assert code == 2 and "INVALID_ARGUMENT" in err and "the limit is 1000" in err
    code, _, err = run(capsys, "items", "state", "st-x", "--target", server.address)
    assert code == 2 and "UNAUTHENTICATED" in err
