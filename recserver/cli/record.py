"""``recserver record FILE``: send an event file to a running server through ``RecordEvents``.

The file is any format ``--events`` reads (CSV with the header
``user_id,item_id,event,weight,timestamp[,event_id]``, JSON lines, Parquet; maybe gzipped),
streamed in blocks and sent in batches of ``--batch`` events. The server judges every event;
rows the file itself cannot give (unparsable numbers, missing fields) are reported here with
their line and never sent. Retrying after a failure is safe when the file has event ids (each
is applied once) or explicit timestamps (the (user, item, event, timestamp) tuple is the key).

Rejected rows (refused by the server, or unreadable in the file) are listed in file order with
their line and reason: the first ``--show-rejected`` (default 20) on the terminal, then how many
more there are; ``--show-all-rejected`` prints every one, ``--rejected-out FILE`` writes every one
to a CSV file (``line,reason``) to fix the input and send those rows again.

Exit status: 0 every sent event was accepted or a duplicate, 1 some were rejected or a call
failed (the summary says how far it got), 2 the file cannot be read or the server refused the
calls as invalid or unauthenticated.
"""

from __future__ import annotations

import argparse
import csv
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from recserver.graph.events import EventColumns
from recserver.graph.loaders import iter_unvalidated
from recserver.proto.recserver.v1 import recommender_pb2 as pb
from recserver.server.admin_client import add_target_args, rpc_failed, wait_visible
from recserver.server.client import RecommendClient, client_from_args

SHOW_REJECTED = 20  # rejected rows printed by default; the rest are counted


@dataclass
class Rejections:
    """Rejected rows in file order: the first ``limit`` kept to print (``None``: all), every
    one written to ``out`` (a csv writer) when given."""

    limit: int | None
    out: Any = None  # csv.writer
    shown: list[str] = field(default_factory=list)
    more: int = 0

    def add(self, rows: list[tuple[int, str]]) -> None:
        """One block's rejected rows (any order): kept in line order."""
        for line, reason in sorted(rows):
            if self.out is not None:
                self.out.writerow((line, reason))
            if self.limit is None or len(self.shown) < self.limit:
                self.shown.append(f"line {line}: {reason}")
            else:
                self.more += 1

    def lines(self, out_name: str | None) -> list[str]:
        text = [f"  {e}" for e in self.shown]
        if self.more:
            hint = (f"all of them are in {out_name}" if out_name
                    else "use --show-all-rejected or --rejected-out FILE")
            text.append(f"  ... and {self.more:,} more ({hint})")
        return text


@dataclass
class Tally:
    """What happened to the file's rows so far."""

    rejections: Rejections
    sent: int = 0
    calls: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    unreadable: int = 0
    position: str = ""

    def summary(self, path: Path, target: str, out_name: str | None = None) -> str:
        text = (f"sent {self.sent:,} events from {path} to {target} in {self.calls:,} calls: "
                f"{self.accepted:,} accepted, {self.duplicates:,} duplicates, "
                f"{self.rejected:,} rejected")
        if self.unreadable:
            text += f"; {self.unreadable:,} rows unreadable in the file (not sent)"
        listed = self.rejections.lines(out_name)
        if listed:
            text += "\n" + "\n".join(listed)
        if out_name and (self.rejected or self.unreadable) and not self.rejections.more:
            text += f"\nevery rejected row: {out_name}"
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
         timeout_s: float, rejected: list[tuple[int, str]]) -> None:
    """One ``RecordEvents`` call; the lines the server rejected go to ``rejected``."""
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
            rejected.append((line, result.reason))


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
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--show-rejected", type=int, default=SHOW_REJECTED, metavar="N",
                       help="print the first N rejected rows, in file order, and count the "
                            f"rest (default {SHOW_REJECTED})")
    shown.add_argument("--show-all-rejected", action="store_true",
                       help="print every rejected row")
    parser.add_argument("--rejected-out", type=Path, metavar="FILE",
                        help="write every rejected row to this CSV file (line,reason), in file "
                             "order")
    add_target_args(parser, timeout_s=30.0)


def send_file(client: RecommendClient, args: argparse.Namespace, tally: Tally) -> None:
    """Send the file block by block; each block's rejected rows, unreadable ones and those the
    server refused, go to the tally in line order (a failed call still reports its block's)."""
    for cols, lines in iter_unvalidated(args.file):
        rejected = [(bad.line, bad.reason) for bad in cols.rejected]
        tally.unreadable += len(rejected)
        events, line_list = to_events(cols), lines.tolist()
        try:
            for start in range(0, len(events), args.batch):
                send(client, events[start : start + args.batch],
                     line_list[start : start + args.batch], tally, args.timeout, rejected)
        finally:
            tally.rejections.add(rejected)


def run(args: argparse.Namespace) -> int:
    if args.batch < 1:
        raise ValueError(f"--batch {args.batch}: give a positive number of events per call")
    if args.show_rejected < 0:
        raise ValueError(f"--show-rejected {args.show_rejected}: give 0 or more rows")
    with ExitStack() as stack:
        out_name, writer = None, None
        if args.rejected_out is not None:  # opened first: a bad path fails before any send
            fh = stack.enter_context(args.rejected_out.open("w", newline="", encoding="utf-8"))
            writer, out_name = csv.writer(fh), str(args.rejected_out)
            writer.writerow(("line", "reason"))
        limit = None if args.show_all_rejected else args.show_rejected
        tally = Tally(Rejections(limit, writer))
        client = stack.enter_context(client_from_args(args))
        try:
            send_file(client, args, tally)
        except grpc.RpcError as exc:
            print(tally.summary(args.file, args.target, out_name))
            return rpc_failed(exc)
        print(tally.summary(args.file, args.target, out_name))
        if args.wait > 0 and tally.position:
            if not wait_visible(client, tally.position, timeout_s=args.wait,
                                call_timeout_s=args.timeout):
                print(f"recserver: not visible on {args.target} after {args.wait:g}s",
                      file=sys.stderr)
                return 1
            print(f"visible on {args.target}")
    return 1 if tally.rejected or tally.unreadable else 0
