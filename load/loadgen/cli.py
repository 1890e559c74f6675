"""Open-loop gRPC load generator for a recserver on this machine.

    .venv/bin/python -m load.loadgen --target 127.0.0.1:50051 --rate 200 --duration 20 \\
        --events ../shared/data/online_retail/uci_online_retail_purchases.csv.gz \\
        --pin-core 0 --out var/perf/adhoc

Sends Recommend calls on a constant or Poisson schedule at ``--rate`` requests/s for
``--duration`` s, independent of the answers, over ``--channels`` gRPC channels, and measures each
latency from the request's due time (no coordinated omission). The requests replay the users of the
event file the server was loaded from (``--events``, or ``--synthetic SIZE`` for the server's
synthetic data) on a surface mix (``--mix home=0.5,item_page=0.35,search=0.15``), with the event's
item as context on ``item_page``. Prints a table per surface and per source (offered and achieved
rate, p50/p90/p99/p99.9/max, errors by status code, degraded share, mean coverage) and writes
``result.json`` plus ``cdf.png`` and ``timeline.png`` under ``--out``.

Pin it away from the server (``--pin-core 0`` with the server under ``taskset -c 1``): a gRPC
Python client costs 140-215 µs of CPU a call, taken from the server when they share a core.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from load.loadgen.schedule import KINDS

DEFAULT_EVENTS = Path("../shared/data/online_retail/uci_online_retail_purchases.csv.gz")


def add_workload_args(parser: argparse.ArgumentParser) -> None:
    """Where the users come from and what they ask (shared with ``load.scenarios``)."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--events", type=Path, help="event file the server was loaded from")
    source.add_argument("--synthetic", metavar="SIZE",
                        help="the server runs --synthetic SIZE (same generator, seed 0)")
    parser.add_argument("--mix", default="home=0.5,item_page=0.35,search=0.15",
                        help="surface=share,... (normalised)")
    parser.add_argument("--context-items", type=int, default=1,
                        help="context items on item_page: the event's item + n-1 of the user's")
    parser.add_argument("--cold-share", type=float, default=0.0,
                        help="share of requests from users the server has never seen")
    parser.add_argument("--debug", action="store_true",
                        help="ask for stage timings; the output gains stage_ms per surface")
    parser.add_argument("--seed", type=int, default=0)


def add_run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--schedule", choices=KINDS, default="poisson")
    parser.add_argument("--channels", type=int, default=4, help="gRPC channels (connections)")
    parser.add_argument("--timeout", type=float, default=2.0, help="client deadline per call, s")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds sent, not recorded")
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    parser.add_argument("--max-in-flight", type=int, default=20_000)
    parser.add_argument("--pin-core", type=int, default=None,
                        help="pin this process to one CPU core (the server on another)")
    parser.add_argument("--quiet", action="store_true", help="no live progress line")


def pin(core: int | None) -> None:
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})


def _fmt(v: float) -> str:
    return "-" if v != v else f"{v:.2f}"  # NaN -> "-"


def summary_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per surface, then one per (surface, source); used by the CLI and the report."""
    rows = []
    for name, s in result["surfaces"].items():
        lat = s["latency_ms"]
        errors = ", ".join(f"{k} {v}" for k, v in sorted(s["errors"].items())) or "0"
        rows.append([name, f"{s['budget_ms']:g}", f"{s['offered_rate']:.0f}",
                     f"{s['achieved_rate']:.0f}",
                     " / ".join(_fmt(lat[k]) for k in ("p50", "p90", "p99", "p99.9", "max")),
                     _fmt(s["server_ms"]["p99"]), errors, f"{100 * s['degraded_share']:.1f}%",
                     f"{100 * s['graph_share']:.1f}%", f"{s['mean_coverage']:.3f}"])
        for source, b in s.get("by_source", {}).items():
            lat = b["latency_ms"]
            rows.append([f"  {source}", "", "", f"{b['achieved_rate']:.0f}",
                         " / ".join(_fmt(lat[k]) for k in ("p50", "p90", "p99", "p99.9", "max")),
                         _fmt(b["server_ms"]["p99"]), "", f"{100 * b['degraded_share']:.1f}%",
                         "", f"{b['mean_coverage']:.3f}"])
    return rows


SUMMARY_HEADER = ["surface/source", "budget", "offered/s", "achieved/s",
                  "p50 / p90 / p99 / p99.9 / max ms", "server p99", "errors", "degraded",
                  "graph", "coverage"]


def print_summary(result: dict[str, Any]) -> None:
    from load.common import print_table

    total = result["total"]
    print(f"\n{result['label'] or 'run'}: {total['requests']} due in {result['window_s']:g} s "
          f"({total['offered_rate']:.0f}/s offered, {total['achieved_rate']:.0f}/s answered), "
          f"errors {total['error_count']}, client send lag p99 "
          f"{_fmt(result['send_lag_ms']['p99'])} ms, client CPU {result['client_cpu_s']:.1f} s")
    print_table(SUMMARY_HEADER, summary_rows(result))
    for event in result.get("events", []):
        print(f"  at {event['t']:.1f}s: {event['what']}" + ("" if event["ok"] else
              f" FAILED {event.get('error')}"))


def write_result(result: dict[str, Any], out: Path, name: str = "result.json") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(json.dumps(result, indent=1, allow_nan=True) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="loopback host:port")
    parser.add_argument("--rate", type=float, required=True, help="offered requests/s")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--out", type=Path, default=Path("var/perf/adhoc"))
    parser.add_argument("--label", default="")
    add_workload_args(parser)
    add_run_args(parser)
    args = parser.parse_args()
    pin(args.pin_core)
    # Imported after pinning, so numpy/grpc threads start on the chosen core.
    from load.loadgen.plots import plot_cdf, plot_timeline
    from load.loadgen.runner import RunConfig, check_loopback, run
    from load.loadgen.schedule import Schedule

    check_loopback(args.target)
    pool = make_pool(args, int(args.rate * (args.duration + args.warmup)) + 1)
    cfg = RunConfig(
        target=args.target,
        schedule=Schedule(args.rate, args.duration, args.schedule, args.max_requests, args.seed),
        channels=args.channels, timeout_s=args.timeout, warmup_s=args.warmup,
        max_in_flight=args.max_in_flight, progress=not args.quiet, label=args.label,
    )
    result = run(cfg, pool)
    print_summary(result)
    path = write_result(result, args.out)
    plot_cdf({args.label or "run": result}, args.out / "cdf.png")
    plot_timeline(result, args.out / "timeline.png")
    print(f"\nwrote {path}, {args.out / 'cdf.png'}, {args.out / 'timeline.png'}")


POOL_MAX = 50_000


def population(args: argparse.Namespace) -> Any:
    """The events the server was loaded from (``--events``, ``--synthetic`` or the default)."""
    from load.loadgen.workload import load_population

    events = args.events if args.events is not None or args.synthetic else DEFAULT_EVENTS
    return load_population(events, args.synthetic)


def make_pool(args: argparse.Namespace, n: int, cols: Any = None) -> list[Any]:
    """The request pool for ``n`` requests (at most ``POOL_MAX`` distinct ones, cycled)."""
    from load.loadgen.workload import Workload, WorkloadSpec, parse_mix

    cols = population(args) if cols is None else cols
    spec = WorkloadSpec(mix=parse_mix(args.mix), context_items=args.context_items,
                        cold_share=args.cold_share, debug=args.debug,
                        seed=args.seed)
    return list(Workload(cols, spec).build(min(max(n, 1), POOL_MAX)))


if __name__ == "__main__":
    main()
