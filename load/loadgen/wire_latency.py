"""The server's own latency as the loopback wire sees it, apart from the load client.

A client's clock adds its own event loop to every call; the handler's clock (arrival stamp to
reply built) leaves out gRPC before the stamp and after the reply. The wire sits between: for
each HTTP/2 stream, from the client's request HEADERS frame to the server's frame that ends the
stream. A stream on which the server sent no DATA was refused (a trailers-only answer).

Capture needs ``dumpcap`` and ``tshark`` (Debian's ``tshark`` package) and the right to capture
on ``lo`` (root, or dumpcap's capabilities); without them :func:`capture` yields ``None`` and the
benchmark prints client and handler figures only.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from load.common import pct

HEADERS, DATA, END_STREAM = 1, 0, 0x1


def available() -> bool:
    """Whether dumpcap and tshark are on the PATH."""
    return shutil.which("dumpcap") is not None and shutil.which("tshark") is not None


@contextlib.contextmanager
def capture(port: int, pcap: Path, core: int | None = None) -> Iterator[Path | None]:
    """Capture loopback TCP on ``port`` into ``pcap`` while the block runs; read it after.

    ``core`` pins dumpcap (with ``taskset``) so that it shares the load client's core, not the
    server's. Yields the file's path, or ``None`` where capture is not possible here."""
    if not available():
        yield None
        return
    cmd = ["dumpcap", "-q", "-i", "lo", "-f", f"tcp port {port}", "-w", str(pcap)]
    if core is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(core), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 5.0
    while not pcap.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # dumpcap creates the file before its filter is in place
    if proc.poll() is not None:  # no right to capture: say why, measure without it
        why = proc.stderr.read().decode().strip() if proc.stderr else ""
        print(f"wire capture unavailable: {why[:200]}")
        yield None
        return
    try:
        yield pcap
    finally:
        time.sleep(0.3)  # the last replies' frames
        proc.terminate()
        proc.wait(10)


def stream_latencies(pcap: Path, port: int) -> tuple[list[float], list[float]]:
    """(answered, refused) milliseconds from request HEADERS to the stream's last frame."""
    return split(streams(pcap, port))


def streams(pcap: Path, port: int) -> list[tuple[float, float, bool]]:
    """Every stream as (epoch of its request HEADERS, milliseconds to its last frame,
    answered: whether the server sent DATA)."""
    fields = ["frame.time_epoch", "tcp.srcport", "tcp.dstport", "http2.streamid", "http2.type",
              "http2.flags"]
    cmd = ["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},http2", "-Y", "http2",
           "-T", "fields"]
    for field in fields:
        cmd += ["-e", field]
    return timed_frames(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout,
                        port)


def split(timed: list[tuple[float, float, bool]]) -> tuple[list[float], list[float]]:
    """(answered, refused) milliseconds of ``streams``."""
    return ([ms for _, ms, ok in timed if ok], [ms for _, ms, ok in timed if not ok])


def parse_frames(out: str, port: int) -> tuple[list[float], list[float]]:
    """(answered, refused) milliseconds from tshark's fields (see ``timed_frames``)."""
    return split(timed_frames(out, port))


def timed_frames(out: str, port: int) -> list[tuple[float, float, bool]]:
    """Streams from tshark's fields: epoch, source and destination port, then stream ids,
    frame types and flags, comma-separated per frame of a segment."""
    first_in: dict[tuple[int, int], float] = {}
    ended: dict[tuple[int, int], float] = {}
    with_data: set[tuple[int, int]] = set()
    for line in out.splitlines():
        cols = line.split("\t")
        if len(cols) < 6 or not cols[3]:
            continue
        at, src, dst = float(cols[0]), int(cols[1]), int(cols[2])
        from_server = src == port
        peer = dst if from_server else src
        # One TCP segment can carry several frames: tshark lists each field once per frame.
        for sid, kind, flags in zip(cols[3].split(","), cols[4].split(","), cols[5].split(","),
                                    strict=False):
            key = (peer, int(sid))
            if key[1] == 0:
                continue  # connection-level frames (SETTINGS, PING, WINDOW_UPDATE)
            kind_n, flags_n = int(kind), int(flags, 0)
            if not from_server:
                if kind_n == HEADERS:
                    first_in.setdefault(key, at)
            elif kind_n == DATA:
                with_data.add(key)
            elif kind_n == HEADERS and flags_n & END_STREAM:
                ended[key] = at
    return [(first_in[key], 1000.0 * (end - first_in[key]), key in with_data)
            for key, end in ended.items() if key in first_in]


def summary(pcap: Path | None, port: int | list[tuple[float, float, bool]],
            window: tuple[float, float] | None = None) -> dict[str, Any] | None:
    """p50 / p99 / max of answered and refused calls on the wire, or ``None`` without a pcap;
    ``port`` may be the streams already read (``streams``), ``window`` (epochs) keeps the
    streams that started in it."""
    if pcap is None or not pcap.exists():
        return None
    timed = streams(pcap, port) if isinstance(port, int) else port
    if window is not None:
        timed = [t for t in timed if window[0] <= t[0] < window[1]]
    answered, refused = split(timed)

    def figures(values: list[float]) -> dict[str, float] | None:
        if not values:
            return None
        return {"n": len(values), "p50_ms": pct(values, 50), "p99_ms": pct(values, 99),
                "max_ms": max(values)}

    return {"answered": figures(answered), "refused": figures(refused)}
