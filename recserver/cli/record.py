"""``recserver record FILE``: send an event file to a running server through ``RecordEvents``.

The file is any format ``--events`` reads (CSV with the header
``user_id,item_id,event,weight,timestamp[,event_id]``, JSON lines, Parquet; maybe gzipped),
streamed in blocks and sent in batches of ``--batch`` events. The server judges every event;
rows the file itself cannot give (unparsable numbers, missing fields) are reported here with
their line and never sent. Retrying after a failure is safe when the file has event ids (each
is applied once) or explicit timestamps (the (user, item, event, timestamp) tuple is the key).

Exit status: 0 every sent event was accepted or a duplicate, 1 some were rejected or a call
failed (the summary says how far it got), 2 the file cannot be read or the server refused the
calls as invalid or unauthenticated.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

from recserver.graph.events import EventColumns
from recserver.graph.loaders import iter_unvalidated
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.server.admin_client import add_target_args, rpc_failed, wait_visible
from recserver.server.client import RecommendClient, client_from_args

EXAMPLES = 5  # rejected lines printed, at most


@dataclass
class Tally:
    """What happened to the file's rows so far."""

    sent: int = 0
    calls: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    unreadable: int = 0
    examples: list[str] = field(default_factory=list)
    position: str = ""

    def note(self, line: int, reason: str) -> None:
        if len(self.examples) < EXAMPLES:
            self.examples.append(f"line {line}: {reason}")

    def summary(self, path: Path, target: str) -> str:
        text = (f"sent {self.sent:,} events from {path} to {target} in {self.calls:,} calls: "
                f"{self.accepted:,} accepted, {self.duplicates:,} duplicates, "
                f"{self.rejected:,} rejected")
        if self.unreadable:
            text += f"; {self.unreadable:,} rows unreadable in the file (not sent)"
        if self.examples:
            text += "\n" + "\n".join(f"  {e}" for e in self.examples)
        if self.position:
            text += f"\nlast log position {self.position}"
        return text


def to_events(cols: EventColumns) -> list[pb.Event]:
    """Wire events for ``cols`` (weight and timestamp exactly as the file gave them)."""
    users = np.asarray(cols.user_names, dtype=object)[cols.user_codes].tolist()
    items = np.asarray(cols.item_names, dtype=object)[cols.item_codes].tolist()
    kinds = np.asarray(cols.type_names, dtype=object)[cols.type_codes].tolist()
    ids = cols.event_ids or [""] * len(cols)
    return [pb.Event(event_id=e, user_id=u, item_id=i, event=k, weight=w, timestamp=t)
            for e, u, i, k, w, t in zip(ids, users, items, kinds, cols.weight.tolist(),
                                        cols.timestamp.tolist(), strict=True)]


def send(client: RecommendClient, events: list[pb.Event], lines: list[int], tally: Tally,
         timeout_s: float) -> None:
    response = client.call("RecordEvents", pb.RecordEventsRequest(events=events),
                           timeout_s=timeout_s)
    assert isinstance(response, pb.RecordEventsResponse)
    tally.calls += 1
    tally.sent += len(events)
    tally.accepted += response.accepted
    tally.duplicates += response.duplicates
    tally.rejected += response.rejected
    if response.log_position:
        tally.position = response.log_position
    for line, result in zip(lines, response.results, strict=True):
        if result.status == pb.REJECTED:
            tally.note(line, result.reason)


NAME = "record"
HELP = "send events from a file to a running server"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE",
                        help="events: .csv, .jsonl or .ndjson (each maybe .gz), or .parquet")
    parser.add_argument("--batch", type=int, default=1000,
                        help="events per call, at most the server's ingest.max_batch_events "
                             "(default 1000)")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="then wait up to this long until the replica shows the events "
                             "(default 0: do not wait)")
    add_target_args(parser, timeout_s=30.0)


def run(args: argparse.Namespace) -> int:
    if args.batch < 1:
        raise ValueError(f"--batch {args.batch}: give a positive number of events per call")
    tally = Tally()
    with client_from_args(args) as client:
        try:
            for cols, lines in iter_unvalidated(args.file):
                for bad in cols.rejected:
                    tally.unreadable += 1
                    tally.note(bad.line, bad.reason)
                events, line_list = to_events(cols), lines.tolist()
                for start in range(0, len(events), args.batch):
                    send(client, events[start : start + args.batch],
                         line_list[start : start + args.batch], tally, args.timeout)
        except grpc.RpcError as exc:
            print(tally.summary(args.file, args.target))
            return rpc_failed(exc)
        print(tally.summary(args.file, args.target))
        if args.wait > 0 and tally.position:
            if not wait_visible(client, tally.position, timeout_s=args.wait,
                                call_timeout_s=args.timeout):
                print(f"recserver: not visible on {args.target} after {args.wait:g}s",
                      file=sys.stderr)
                return 1
            print(f"visible on {args.target}")
    return 1 if tally.rejected or tally.unreadable else 0
