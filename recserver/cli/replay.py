"""The ``recserver replay`` command: options, the run, the table / JSON / plot."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recserver.cli._source_args import add_source_args
from recserver.config import load_config
from recserver.eval.evaluate import load_source
from recserver.eval.output import add_output_args, emit
from recserver.eval.replay import ReplayOptions, format_document, replay
from recserver.eval.replay_modes import DEFAULT_MODES, parse_duration

NAME = "replay"
QUIET_LOGS = True  # the report is the output: progress logs only with -v
HELP = ("stream the test period through realtime / delayed / frozen / retrained models in "
        "simulated time: quality, freshness, stability")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_source_args(parser)
    parser.add_argument("--config", type=Path, help="YAML config (default: the embedded one)")
    parser.add_argument("--surface", help="surface asked (default: the config's first)")
    parser.add_argument("-k", type=int, default=20, help="answer size (default 20)")
    parser.add_argument("--test-fraction", type=float, default=0.1,
                        help="share of events (the latest) replayed (default 0.1)")
    parser.add_argument("--modes",
                        help="comma-separated: realtime, delayed:D, frozen, BASELINE:P (ease, "
                        "itemknn, rp3beta, als retrained every P), baseline, trending:W (the "
                        "most-clicked items of the W before each ask); a graph mode may "
                        f"end in @INTERVAL (default {DEFAULT_MODES}; with --target: realtime)")
    parser.add_argument("--protocol", choices=("sessions", "next-click"), default="sessions",
                        help="sessions: ask at each session's start, score the new items of "
                        "the window; next-click: ask with the item just clicked as context "
                        "before the user's next click (within --session-gap), score that click "
                        "(hit rate and MRR) (default sessions)")
    parser.add_argument("--session-gap", default="30m",
                        help="a user's events closer than this form one session; next-click: "
                        "the longest wait for the next click (default 30m)")
    parser.add_argument("--window", default="1d",
                        help="a session is scored on the new items the user touches within "
                        "this of its start (default 1d)")
    parser.add_argument("--stability-every", default="1d",
                        help="probe users are asked again this often (default 1d; 0: off)")
    parser.add_argument("--stability-users", type=int, default=200,
                        help="users probed for stability, a seeded sample (default 200)")
    parser.add_argument("--max-sessions", type=int, default=0,
                        help="ask a seeded sample of this many sessions (default 0: all)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--no-tune-baselines", action="store_true",
                        help="baselines use their default settings instead of a validation sweep")
    parser.add_argument("--ease-max-items", type=int, default=20_000,
                        help="largest catalogue EASE runs on (default 20000); above it "
                        "'baseline' means ItemKNN")
    parser.add_argument("--plot", type=Path, metavar="FILE.png",
                        help="draw quality against freshness delay here (needs the plots extra)")
    parser.add_argument("--target", metavar="HOST:PORT",
                        help="replay against a running server (RecordEvents + Recommend, "
                        "realtime only) instead of in-process; the server must hold the events "
                        "before the cutoff (see --send-train); RECSERVER_TOKEN is sent when set")
    parser.add_argument("--send-train", action="store_true",
                        help="with --target: record the events before the cutoff first (for a "
                        "server started without them)")
    parser.add_argument("--learn-blend", type=Path, metavar="OUT.yaml",
                        help="first learn the surface's blend (walk share, fusion mode) on a "
                        "validation replay of the training period, write the config with it "
                        "here, and replay the test period with it")
    parser.add_argument("--progress", action="store_true",
                        help="progress bars on stderr (default: when stderr is a terminal)")
    add_output_args(parser)


def options_from_args(args: argparse.Namespace) -> ReplayOptions:
    if args.k <= 0:
        raise ValueError(f"-k {args.k}: ask for at least one item")
    return ReplayOptions(
        surface=args.surface, k=args.k, test_fraction=args.test_fraction,
        modes=args.modes or ("realtime" if args.target else DEFAULT_MODES),
        gap_s=parse_duration(args.session_gap), window_s=parse_duration(args.window),
        probe_every_s=parse_duration(args.stability_every),
        probe_users=max(0, args.stability_users), max_sessions=args.max_sessions or None,
        seed=args.seed, tune_baselines=not args.no_tune_baselines,
        ease_max_items=args.ease_max_items,
        progress=bool(args.progress or sys.stderr.isatty()), protocol=args.protocol,
    )


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    opts = options_from_args(args)
    if args.plot is not None:
        from recserver.eval.plotting import check_plotting

        check_plotting()  # before the replay, not after minutes of it
    cols, source = load_source(config, args.events, args.synthetic, strict=args.strict,
                               seed=args.seed)
    learnt = None
    if args.learn_blend is not None:
        import yaml

        from recserver.eval.blend_learn import learn_blend
        from recserver.eval.tune import merged_document

        learnt = learn_blend(config, cols, opts.surface or next(iter(config.surfaces)),
                             k=opts.k, test_fraction=opts.test_fraction, gap_s=opts.gap_s,
                             window_s=opts.window_s, max_sessions=opts.max_sessions,
                             seed=opts.seed)
        merged = merged_document(args.config, learnt.fragment())
        args.learn_blend.write_text(yaml.safe_dump(merged, sort_keys=False))
        config = load_config(args.learn_blend)
        print(f"learnt blend  {learnt.surface}: {learnt.mode}, walk share {learnt.share:g} "
              f"(validation recall@{opts.k} {learnt.recall:.4f} on {learnt.sessions} sessions; "
              f"written to {args.learn_blend})", file=sys.stderr)
    remote = None
    if args.target is not None:
        from recserver.eval.replay_remote import remote_factory

        remote = remote_factory(args.target, config, opts, send_train=args.send_train)
    doc = replay(config, cols, opts, source, remote=remote, target=args.target)
    if learnt is not None:
        doc["learnt_blend"] = learnt.record()
    if args.plot is not None:
        from recserver.eval.replay_plot import plot_freshness

        doc["plot"] = str(plot_freshness(doc, args.plot))
    print(emit(doc, args, format_document))
    return 0
