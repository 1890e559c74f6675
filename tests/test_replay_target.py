"""``recserver replay --target``: the realtime mode against a node over gRPC (an in-process
builder and worker, ``tests.node_harness``: events recorded on the worker reach the builder,
answers come from the snapshot the worker maps)."""

from __future__ import annotations

import bisect
import csv
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from recserver.cli import main
from recserver.config import config_from_document
from recserver.eval.replay import ReplayOptions, replay
from recserver.eval.replay_engine import Replayer
from recserver.eval.replay_remote import RemoteReplayer, remote_factory
from recserver.eval.replay_sessions import Ask
from recserver.graph.events import EventColumns
from recserver.graph.synthetic import generate
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from tests.node_harness import DataSource, InProcessNode

DOCUMENT = {
    "surfaces": {"home": {"budget_ms": 2_000, "sla_p99_ms": 2_000, "walk": {"steps": 5_000},
                          "fallback": {"tiers": ["popular"]}}},
    "graph": {"publish_interval_s": 0.1},
}
TEST_FRACTION = 0.2


@pytest.fixture(scope="module")
def events() -> EventColumns:
    return generate(20_000, seed=3)


@pytest.fixture(scope="module")
def server(events: EventColumns, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, float]]:
    """A server holding the events before the cutoff; yields (address, cutoff)."""
    root = tmp_path_factory.mktemp("replay-target")
    cutoff = float(np.quantile(events.timestamp, 1 - TEST_FRACTION, method="higher"))
    train = root / "train.csv"
    with train.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id", "item_id", "event", "weight", "timestamp"])
        for e in events.to_events():
            if e.timestamp < cutoff:
                writer.writerow([e.user_id, e.item_id, e.event, e.weight, e.timestamp])
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(DOCUMENT))
    app = InProcessNode(config, root)
    port = app.start(DataSource(events=train))
    yield f"127.0.0.1:{port}", cutoff
    app.stop(0)


def test_target_replay_records_in_time_order_and_never_shows_the_future(
    events: EventColumns, server: tuple[str, float]
) -> None:
    address, _ = server
    per_user: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for e in events.to_events():
        per_user[e.user_id].append((e.timestamp, e.item_id))
    for rows in per_user.values():
        rows.sort()
    checked: list[int] = []

    def before(user: str, t: float) -> set[str]:
        rows = per_user[user]
        return {item for _, item in rows[:bisect.bisect_left(rows, (t, ""))]}

    def on_ask(ask: Ask, replayer: Replayer) -> None:
        assert isinstance(replayer, RemoteReplayer)
        replayer.wait_for_user(ask.user)  # what answer() does first
        described = replayer.stub.DescribeUser(pb.DescribeUserRequest(user_id=ask.user))
        held = {edge.item_id for edge in described.edges}
        # Exactly the user's past: nothing from the ask's time on (it is not recorded yet),
        # everything before it (recorded and waited for).
        assert held == before(ask.user, ask.t), ask
        checked.append(len(held))

    config = config_from_document(DOCUMENT)
    opts = ReplayOptions(k=10, test_fraction=TEST_FRACTION, modes="realtime", max_sessions=60,
                         probe_users=0, tune_baselines=False)
    doc = replay(config, events, opts, "synthetic", on_ask=on_ask,
                 remote=remote_factory(address, config, opts), target=address)
    record = doc["modes"][0]
    assert doc["target"] == address and record["mode"] == "realtime"
    assert record["answers"] == doc["sessions"]["asked"] == 60 == len(checked)
    assert record["events_recorded"] > 0 and record["publishes"] > 0
    assert record["p99_ms"] >= record["p50_ms"] > 0.0
    assert 0.0 < record["recall@10"] <= 1.0

    # In-process realtime on the same config asks the same questions with the same request
    # ids; the server's answers come from the same events, so quality is close.
    local = replay(config, events, opts, "synthetic")["modes"][0]
    assert local["answers"] == record["answers"]
    assert abs(local["recall@10"] - record["recall@10"]) < 0.1


def test_target_accepts_only_the_realtime_mode(events: EventColumns,
                                               server: tuple[str, float]) -> None:
    config = config_from_document(DOCUMENT)
    opts = ReplayOptions(k=10, test_fraction=TEST_FRACTION, modes="realtime,frozen")
    with pytest.raises(ValueError, match="--modes realtime"):
        replay(config, events, opts, remote=remote_factory(server[0], config, opts))


def write_csv(path: Path, rows: list[tuple[str, str, str, float, float]]) -> Path:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id", "item_id", "event", "weight", "timestamp"])
        writer.writerows(rows)
    return path


def test_the_command_sends_the_training_events_to_an_empty_server(
    events: EventColumns, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rows = [(e.user_id, e.item_id, e.event, e.weight, e.timestamp) for e in events.to_events()]
    log = write_csv(tmp_path / "log.csv", rows)
    # A server that starts with one unrelated event: everything else comes through RecordEvents.
    seed = write_csv(tmp_path / "seed.csv", [("nobody", "nothing", "view", 1.0, rows[0][4])])
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(DOCUMENT))
    app = InProcessNode(config, tmp_path)
    port = app.start(DataSource(events=seed))
    try:
        code = main(["replay", "--events", str(log), "--config", str(config), "--target",
                     f"127.0.0.1:{port}", "--send-train", "-k", "10", "--test-fraction",
                     str(TEST_FRACTION), "--max-sessions", "40", "--stability-users", "0",
                     "--format", "json"])
        assert code == 0
        doc = json.loads(capsys.readouterr().out)
        record = doc["modes"][0]
        assert record["mode"] == "realtime" and record["answers"] == 40
        sent = doc["split"]["train_events"] + doc["split"]["test_events"]
        assert 0.9 * doc["split"]["train_events"] < record["events_recorded"] <= sent
        assert app.graph.current.n_users > 100  # the training users reached the builder over gRPC
        assert record["cold_answers"] < 40
    finally:
        app.stop(0)
