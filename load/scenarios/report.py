"""Render the scenario results as the markdown tables of ``docs/performance.md``.

    .venv/bin/python -m load.scenarios.report                      # print every section found
    .venv/bin/python -m load.scenarios.report --write docs/performance.md --copy-images docs/perf

Reads ``var/perf/<scenario>/result.json`` (written by ``load.scenarios``). With ``--write`` each
section replaces the text between ``<!-- perf:<scenario>:begin -->`` and
``<!-- perf:<scenario>:end -->`` in that file; ``--copy-images`` copies the PNGs next to it (the
``var/`` folder is not committed) and links them from there.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

ORDER = ("saturation", "steady", "overload", "redis-down", "redis-pause", "reload")
TITLES = {
    "saturation": "2. Saturation search", "steady": "1. Steady at half saturation",
    "overload": "3. Twice the full-quality saturation rate", "redis-down": "4. Redis stopped",
    "redis-pause": "5. Redis paused in bursts", "reload": "6. Config reload and snapshot publish",
}


def _ms(v: Any) -> str:
    return "-" if v is None or v != v else f"{v:.1f}"


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _reasons(body: dict[str, Any]) -> str:
    ok = max(body["ok"], 1)
    top = sorted(body["degraded_reasons"].items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{name} {_pct(n / ok)}" for name, n in top) or "-"


def _errors(body: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(body["errors"].items())) or "0"


def surface_rows(run: dict[str, Any], verdict: dict[str, Any] | None = None) -> list[list[str]]:
    rows = []
    for name, s in run["surfaces"].items():
        v = (verdict or {}).get(name, {})
        budget = v.get("budget_ms", s["budget_ms"])
        lat = s["latency_ms"]
        ok = "yes" if s["server_ms"]["p99"] <= budget and not s["error_count"] else "**no**"
        rows.append([name, f"{budget:g}", _ms(s["server_ms"]["p99"]), ok,
                     " / ".join(_ms(lat[k]) for k in ("p50", "p99", "p99.9", "max")),
                     f"{s['offered_rate']:.0f} / {s['achieved_rate']:.0f}", _errors(s),
                     _pct(s["graph_share"]), _pct(s["degraded_share"]), _reasons(s),
                     f"{s['mean_coverage']:.2f}"])
    return rows


SURFACE_HEADER = ["surface", "budget ms", "server p99 ms", "p99 <= budget, no errors",
                  "client p50 / p99 / p99.9 / max ms", "offered / answered per s", "errors",
                  "graph-served", "degraded", "top reasons", "coverage"]


def _head(payload: dict[str, Any]) -> str:
    parts = []
    if "rate" in payload:
        parts.append(f"offered {payload['rate']:.0f} requests/s = {payload.get('load', 0):g} x "
                     f"the full-quality saturation rate {payload.get('saturation_rps', 0):.0f}/s "
                     f"(from {payload.get('saturation_from', '?')})")
    parts.append(f"command `{payload.get('command', '?')}`")
    if payload.get("quick"):
        parts.append("**quick run: figures for checking the tooling only**")
    return "; ".join(parts) + f".\n\n{payload.get('machine', '')}\n"


def _phases(run: dict[str, Any]) -> str:
    rows = [[p["phase"], f"{p['from_s']:g}-{p['to_s']:g}", _ms(p["latency_ms"]["p99"]),
             _ms(p["latency_ms"]["max"]), str(p["errors"]), _pct(p["degraded_share"]),
             ", ".join(f"{s} {_pct(v)}" for s, v in sorted(p["source_shares"].items(),
                                                           key=lambda kv: -kv[1]))]
            for p in run.get("phases", [])]
    header = ["phase", "seconds", "client p99 ms (all surfaces)", "max ms", "errors", "degraded",
              "answers by source"]
    return _table(header, rows) if rows else ""


def _ladder(steps: list[dict[str, Any]]) -> str:
    surfaces = list(steps[0]["surfaces"]) if steps else []
    rows = []
    for s in steps:
        t = s["total"]
        rows.append([f"{s['config']['schedule']['rate']:.0f}", f"{t['achieved_rate']:.0f}",
                     *(_ms(s["surfaces"][n]["server_ms"]["p99"]) + " / "
                       + _ms(s["surfaces"][n]["latency_ms"]["p99"]) for n in surfaces),
                     _pct(t["graph_share"]), str(t["error_count"]),
                     "**crossed**" if s.get("crossing") else "held"])
    header = ["offered/s", "answered/s", *(f"{n} server / client p99 ms" for n in surfaces),
              "graph-served", "errors", "budget"]
    return _table(header, rows)


def render_scenario(name: str, payload: dict[str, Any], images: str = "") -> str:
    """The markdown section of one scenario's result."""
    out = [_head(payload)]
    if name == "saturation":
        cross = payload["crossing_rps"]
        off = f"{cross['not_enforced']:.0f}/s" if cross["not_enforced"] else "no step"
        on = f"{cross['enforced']:.0f}/s" if cross["enforced"] else "no step (up to the last)"
        out.append(f"Full-quality saturation (last step without enforcement inside every budget): "
                   f"**{payload['full_quality_saturation_rps']:.0f} requests/s**. p99 crosses the "
                   f"budget at {off} without degradation and at {on} with it.\n")
        for label, key in (("Without enforcement", "not_enforced"), ("Enforced", "enforced")):
            out += [f"**{label}**\n", _ladder(payload["ladders"][key]), ""]
        out.append(_images(images, name, ["server_vs_load.png", "latency_vs_load.png",
                                          "cdf.png"]))
    elif name == "overload":
        for label, run in payload["runs"].items():
            out += [f"**{label}**\n", _table(SURFACE_HEADER, surface_rows(
                run, payload["verdict"].get(label))), ""]
        out.append(_images(images, name, ["cdf.png", "timeline_enforced.png",
                                          "timeline_not_enforced.png"]))
    else:
        run = payload["run"]
        out += [_table(SURFACE_HEADER, surface_rows(run, payload.get("verdict"))), ""]
        if run.get("phases"):
            out += [_phases(run), ""]
        if run.get("ingest"):
            ing = run["ingest"]
            out.append(f"Ingest over RecordEvents: {ing['accepted']:,} events accepted at "
                       f"{ing['rate']:g}/s, errors {ing['errors'] or 0}, call p99 "
                       f"{_ms(ing['latency_ms']['p99'])} ms; snapshot versions seen by the "
                       f"load: {payload.get('snapshot_versions_seen', '?')}.\n")
        elif "ingest_mode" in payload:
            out.append(f"Ingest: {payload['ingest_mode']} at {payload['ingest_rate']:g} "
                       f"events/s; snapshot versions seen: "
                       f"{payload.get('snapshot_versions_seen', '?')}.\n")
        out.append(_images(images, name, ["cdf.png", "timeline.png"]))
    return "\n".join(out).rstrip() + "\n"


def _images(prefix: str, name: str, files: list[str]) -> str:
    return " ".join(f"![{f}]({prefix}{name}/{f})" for f in files) if prefix else ""


def replace_section(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- perf:{name}:begin -->", f"<!-- perf:{name}:end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"no {begin} ... {end} markers in the report")
    return pattern.sub(lambda _m: f"{begin}\n{body}{end}", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("var/perf"))
    parser.add_argument("--write", type=Path, help="fill the markers of this markdown file")
    parser.add_argument("--copy-images", type=Path, help="copy PNGs here and link them")
    args = parser.parse_args()
    text = args.write.read_text() if args.write else None
    for name in ORDER:
        path = args.results / name / "result.json"
        if not path.exists():
            continue
        prefix = ""
        if args.copy_images is not None:
            target = args.copy_images / name
            target.mkdir(parents=True, exist_ok=True)
            for png in path.parent.glob("*.png"):
                shutil.copy2(png, target / png.name)
            base = args.write.parent if args.write else Path(".")
            prefix = os.path.relpath(args.copy_images, base) + "/"
        body = render_scenario(name, json.loads(path.read_text()), prefix)
        if text is None:
            print(f"## {TITLES[name]}\n\n{body}")
        else:
            text = replace_section(text, name, body)
    if args.write and text is not None:
        args.write.write_text(text)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
