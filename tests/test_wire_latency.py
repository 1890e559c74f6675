"""The wire-latency parser of the node benchmark: streams paired, answers told from refusals."""

from load.loadgen.wire_latency import parse_frames

PORT = 50051


def row(at: float, src: int, dst: int, sids: str, types: str, flags: str) -> str:
    return "\t".join([f"{at:.6f}", str(src), str(dst), sids, types, flags])


def test_answered_and_refused_streams_are_timed_from_request_headers_to_end_of_stream() -> None:
    out = "\n".join([
        row(100.000, 40000, PORT, "0", "4", "0x00"),  # SETTINGS: connection-level, ignored
        # Two requests in one segment: HEADERS then DATA on streams 1 and 3.
        row(100.001, 40000, PORT, "1,1,3,3", "1,0,1,0", "0x04,0x01,0x04,0x01"),
        # Stream 3 refused at once: trailers-only HEADERS with END_STREAM, no DATA.
        row(100.002, PORT, 40000, "3", "1", "0x05"),
        # Stream 1 answered: HEADERS, DATA, then trailers with END_STREAM.
        row(100.010, PORT, 40000, "1,1", "1,0", "0x04,0x00"),
        row(100.013, PORT, 40000, "1", "1", "0x05"),
        # Same stream id on another connection is another call.
        row(100.020, 40001, PORT, "1", "1", "0x04"),
        row(100.025, PORT, 40001, "1", "1", "0x05"),
        # A request with no end seen (capture stopped) is left out.
        row(100.030, 40000, PORT, "5", "1", "0x04"),
        "",  # tshark's trailing newline
    ])
    answered, refused = parse_frames(out, PORT)
    assert [round(ms, 3) for ms in answered] == [12.0]
    assert sorted(round(ms, 3) for ms in refused) == [1.0, 5.0]
