"""The six load scenarios: one command each, each bounded in time.

    .venv/bin/python -m load.scenarios saturation    # 2: step the rate up, find where p99 crosses
    .venv/bin/python -m load.scenarios steady        # 1: half the full-quality saturation rate
    .venv/bin/python -m load.scenarios overload      # 3: twice it, enforcement on vs off
    .venv/bin/python -m load.scenarios redis-down    # 4: Redis killed mid-run, then restarted
    .venv/bin/python -m load.scenarios redis-pause   # 5: Redis paused (CLIENT PAUSE) in bursts
    .venv/bin/python -m load.scenarios reload        # 6: config reload + publishes under ingest
    .venv/bin/python -m load.scenarios all           # 2, 1, 3, 4, 5, 6 in that order

Run ``saturation`` first: the others take its full-quality saturation rate from
``var/perf/saturation/result.json`` (or ``--rate``; without either they run a quick probe first).
Each scenario starts its own server(s) pinned to core 1, pins itself to core 0, starts its own
redis-server on a free port when it needs one, and writes ``var/perf/<scenario>/result.json`` and
PNG plots; ``load/scenarios/report.py`` turns the JSON files into the tables of
``docs/performance.md``.
``--quick`` shrinks every duration to a few seconds: it checks the tooling, its figures mean little.
Full runs take about: saturation 6-8 min, steady 1.2 min, overload 1.5 min, redis-down 1 min,
redis-pause 1 min, reload 1.3 min.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from load.loadgen.cli import add_workload_args
from load.loadgen.plots import plot_cdf, plot_timeline
from load.loadgen.schedule import KINDS
from load.scenarios.common import Context, budget_verdict, log, new_context
from load.scenarios.faults import redis_down, redis_pause, reload
from load.scenarios.saturation import NOT_ENFORCED, saturation


def steady(ctx: Context) -> dict[str, Any]:
    """Scenario 1: half the full-quality saturation rate for a minute."""
    offered = ctx.offered(0.5)
    server = ctx.start_server("steady")
    result = ctx.drive(server, offered["rate"], ctx.seconds(60.0, 4.0), "steady")
    ctx.stop_server(server)
    title = f"scenario 1: steady at {offered['load']:g}x saturation"
    plot_cdf({"steady": result}, ctx.out / "cdf.png", title)
    plot_timeline(result, ctx.out / "timeline.png", title)
    return {"run": result, **offered, "verdict": budget_verdict(result)}


def overload(ctx: Context) -> dict[str, Any]:
    """Scenario 3: twice the full-quality saturation rate, offered to the server with budgets
    enforced and then, same schedule and requests, to one with ``enforce_budgets: false``."""
    offered = ctx.offered(2.0)
    d = ctx.seconds(30.0, 4.0)
    runs = {}
    for label, overrides in (("enforced", {}), ("not enforced", NOT_ENFORCED)):
        server = ctx.start_server(label.replace(" ", "_"), overrides)
        runs[label] = ctx.drive(server, offered["rate"], d, f"overload {label}")
        ctx.stop_server(server)
        plot_timeline(runs[label], ctx.out / f"timeline_{label.replace(' ', '_')}.png",
                      f"scenario 3: {offered['load']:g}x saturation, {label}")
    plot_cdf(runs, ctx.out / "cdf.png", f"scenario 3: {offered['rate']:.0f}/s offered "
             f"({offered['load']:g}x saturation)")
    return {"runs": runs, **offered,
            "verdict": {label: budget_verdict(r) for label, r in runs.items()}}


SCENARIOS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "saturation": saturation,
    "steady": steady,
    "overload": overload,
    "redis-down": redis_down,
    "redis-pause": redis_pause,
    "reload": reload,
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m load.scenarios",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    parser.add_argument("--quick", action="store_true", help="seconds, not minutes: a smoke test")
    parser.add_argument("--rate", type=float, help="full-quality saturation rate to assume")
    parser.add_argument("--duration", type=float, help="measured seconds (per step / per run)")
    parser.add_argument("--out", type=Path, default=Path("var/perf"))
    parser.add_argument("--start-rate", type=float, default=40.0, help="saturation: first step")
    parser.add_argument("--factor", type=float, default=1.25, help="saturation: step factor")
    parser.add_argument("--max-rate", type=float, default=3_000.0,
                        help="saturation: stop below this offered rate (the client's limit)")
    parser.add_argument("--pause-ms", type=int, default=500, help="redis-pause: pause length")
    parser.add_argument("--ingest-rate", type=float, default=2_000.0, help="reload: events/s")
    parser.add_argument("--schedule", choices=KINDS, default="poisson")
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=2.0, help="client deadline per call")
    parser.add_argument("--quiet", action="store_true", help="no live progress line")
    parser.add_argument("--load", type=float, help="offered rate as a multiple of the "
                        "full-quality saturation rate (default: steady 0.5, overload 2, "
                        "redis-down 2, redis-pause 2, reload 0.5)")
    add_workload_args(parser)
    args = parser.parse_args(argv)
    args.argv = argv
    return args


def run_one(args: argparse.Namespace, name: str) -> bool:
    ctx = new_context(args, name)
    started = time.perf_counter()
    log(f"{name}: start ({'quick' if ctx.quick else 'full'} run), results in {ctx.out}")
    try:
        payload = SCENARIOS[name](ctx)
        payload["wall_s"] = round(time.perf_counter() - started, 1)
        ctx.write(payload)
    except Exception as exc:  # report, stop servers, go on with the next scenario
        log(f"{name}: FAILED: {exc!r}")
        for server in ctx.servers:
            print("\n".join(server.tail), file=sys.stderr)
        return False
    finally:
        ctx.close()
    log(f"{name}: done in {time.perf_counter() - started:.0f} s")
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    results = {name: run_one(args, name) for name in names}
    failed = [name for name, ok in results.items() if not ok]
    if failed:
        log(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
