"""Scenario 2: the saturation search, and the quick probe other scenarios fall back on.

Two ladders of open-loop steps, each step ``factor`` times the rate of the one before:

* against a server with ``server.enforce_budgets: false`` (every walk runs to completion: full
  quality, no degradation) until p99 crosses the budget. The last step that held is the
  **full-quality saturation rate**, the unit of scenarios 1 (half of it) and 3 (twice it);
* against the normal server (budgets enforced: walks cut at the deadline, shed when they cannot
  start in time, answered from the fallback) until p99 crosses the budget *with* degradation, or
  the ladder reaches ``--max-rate`` (then the load generator, not the server, is the limit).

A step "crosses" when, on some surface, the server's p99 (``server_elapsed_ms``) exceeds the
surface budget, or the client's p99 exceeds the surface's end-to-end SLA (``sla_p99_ms``), or more
than 1% of requests failed. Between steps the server is given a few seconds to drain.
"""

from __future__ import annotations

from typing import Any

from load.common.server_process import ServerProcess
from load.loadgen.plots import plot_cdf, plot_vs_load
from load.scenarios.common import BASE_DOCUMENT, Context, log

NOT_ENFORCED = {"server": {"enforce_budgets": False}}
#: A step whose requests left the client this late (p99) measured the client, not the server.
CLIENT_LAG_LIMIT_MS = 10.0


def crossing(result: dict[str, Any]) -> list[str]:
    """Why this step crossed the budget (empty: it held)."""
    why = []
    for name, s in result["surfaces"].items():
        configured = BASE_DOCUMENT["surfaces"].get(name, {})
        budget = configured.get("budget_ms", s["budget_ms"])
        sla = configured.get("sla_p99_ms", budget)
        server_p99, client_p99 = s["server_ms"]["p99"], s["latency_ms"]["p99"]
        if not server_p99 <= budget:  # NaN (nothing answered) crosses too
            why.append(f"{name}: server p99 {server_p99} ms > budget {budget:g} ms")
        if not client_p99 <= sla:
            why.append(f"{name}: client p99 {client_p99} ms > SLA {sla:g} ms")
    total = result["total"]
    if total["error_count"] > 0.01 * max(total["requests"], 1):
        why.append(f"errors {total['error_count']} of {total['requests']}")
    return why


def ladder(ctx: Context, server: ServerProcess, label: str, *, start: float, factor: float,
           step_s: float, max_steps: int, max_rate: float, beyond: int = 1
           ) -> tuple[list[dict[str, Any]], float | None]:
    """Step the rate up until ``beyond`` steps past the first crossing (or a limit); returns
    the steps and the first crossing rate (None: never crossed)."""
    steps: list[dict[str, Any]] = []
    crossed_at: float | None = None
    rate = start
    for _ in range(max_steps):
        result = ctx.drive(server, rate, step_s, f"{label} {rate:.0f}/s")
        result["crossing"] = crossing(result)
        steps.append(result)
        if result["send_lag_ms"]["p99"] > CLIENT_LAG_LIMIT_MS:
            result["client_limited"] = True
            log(f"{label}: {rate:.0f}/s: the client sent late (p99 "
                f"{result['send_lag_ms']['p99']:.1f} ms); the client is the limit, stopping")
            break
        if result["crossing"]:
            log(f"{label}: {rate:.0f}/s crosses: {'; '.join(result['crossing'])}")
            if crossed_at is None:
                crossed_at = rate
        if crossed_at is not None and len(steps) - 1 - _index(steps, crossed_at) >= beyond:
            break
        if rate * factor > max_rate:
            log(f"{label}: next step would pass --max-rate {max_rate:g}/s; stopping")
            break
        server.wait_idle(max_s=8.0, idle_cpu=0.1)  # let a backlog drain before the next step
        rate *= factor
    return steps, crossed_at


def _index(steps: list[dict[str, Any]], rate: float) -> int:
    return next(i for i, s in enumerate(steps) if s["config"]["schedule"]["rate"] == rate)


def last_held(steps: list[dict[str, Any]]) -> float | None:
    """The highest rate before the first crossing."""
    held = None
    for s in steps:
        if s["crossing"]:
            break
        held = s["config"]["schedule"]["rate"]
    return held


def saturation(ctx: Context) -> dict[str, Any]:
    args = ctx.args
    step_s = ctx.seconds(10.0, 2.0)
    start = args.start_rate
    factor = args.factor
    max_steps = 6 if ctx.quick else 16
    off = ctx.start_server("not_enforced", NOT_ENFORCED)
    off_steps, off_cross = ladder(ctx, off, "not enforced", start=start, factor=factor,
                                  step_s=step_s, max_steps=max_steps, max_rate=args.max_rate)
    ctx.stop_server(off)
    full_quality = last_held(off_steps)
    if full_quality is None:
        full_quality = start / factor
        log(f"even {start:g}/s crossed the budget without enforcement; lower --start-rate")
    on = ctx.start_server("enforced")
    # The enforced ladder starts at the full-quality rate: below it both servers behave alike.
    on_steps, on_cross = ladder(ctx, on, "enforced", start=full_quality, factor=factor,
                                step_s=step_s, max_steps=max_steps, max_rate=args.max_rate)
    ctx.stop_server(on)
    payload = {
        "full_quality_saturation_rps": full_quality,
        "crossing_rps": {"not_enforced": off_cross, "enforced": on_cross},
        "max_rate": args.max_rate,
        "ladders": {"not_enforced": off_steps, "enforced": on_steps},
    }
    top = on_steps[-1]["config"]["schedule"]["rate"]
    with_it = f"{on_cross:.0f}" if on_cross else f"> {top:.0f} (not reached)"
    log(f"full-quality saturation {full_quality:.0f}/s; p99 crosses the budget at "
        f"{off_cross or 0:.0f}/s without degradation, at {with_it}/s with it")
    series = {"enforced": on_steps, "not enforced": off_steps}
    plot_vs_load(series, ctx.out / "latency_vs_load.png",
                 "saturation search: client latency vs offered load")
    plot_vs_load(series, ctx.out / "server_vs_load.png",
                 "saturation search: server latency vs offered load", metric="server_ms")
    picks = {f"not enforced {s['config']['schedule']['rate']:.0f}/s": s for s in off_steps[-2:]}
    picks |= {f"enforced {s['config']['schedule']['rate']:.0f}/s": s for s in on_steps[-2:]}
    plot_cdf(picks, ctx.out / "cdf.png", "saturation search: CDF of the last steps")
    return payload


def quick_probe(ctx: Context) -> float:
    """A short ladder (2 s steps) against a server without enforcement: the full-quality rate."""
    log("no saturation figure yet: running a quick probe (2 s steps, no enforcement)")
    server = ctx.start_server("probe_not_enforced", NOT_ENFORCED)
    try:
        steps, _ = ladder(ctx, server, "probe", start=ctx.args.start_rate, factor=1.5,
                          step_s=2.0, max_steps=10, max_rate=ctx.args.max_rate, beyond=0)
    finally:
        ctx.stop_server(server)
    rate = last_held(steps) or ctx.args.start_rate / 1.5
    log(f"quick probe: full-quality saturation about {rate:.0f}/s")
    return rate
