"""Subcommands of the web layer, wired into ``annobc`` by annobc.cli.main: ``serve`` and ``compare``."""

from __future__ import annotations

import argparse
import json
import sys

from annobc.gui import DEFAULT_SCREEN, DEFAULT_VARIANT


def _screen(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"screen size must look like 160x128, got {text!r}") from None
    return w, h


def _ui_variant(text: str) -> str:
    from annobc.gui import get_variant

    try:
        return get_variant(text).name
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_serve(args) -> int:
    import uvicorn

    from annobc.data import parse_task_params, resolve_tasks
    from annobc.web.app import create_app, is_loopback

    tasks = list(resolve_tasks(args.tasks))
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be 0-65535, got {args.port}")
    loopback = is_loopback(args.host)
    if not loopback:
        print(f"annobc serve: WARNING: listening on {args.host}, not on 127.0.0.1: anyone who can "
              f"reach this machine on port {args.port} can open sessions and read the recorded "
              f"episodes. There is no login. Use this only on a network you trust.", file=sys.stderr)
    app = create_app(args.out, tasks, screen=args.screen, theme=args.theme, scale=args.scale,
                     step_cap=args.step_cap, seed_start=args.seed_start, split=args.split,
                     replay_dirs=args.replay, store_frames=args.store_frames,
                     allowed_hosts=None if loopback else ["*"], ui_variant=args.ui_variant,
                     params=parse_task_params(args.param))
    web = app.state.web
    if web.recovered:
        print(f"annobc serve: finalised {len(web.recovered)} unfinished session(s) from an earlier "
              f"server: {', '.join(web.recovered)}", file=sys.stderr)
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"annobc serve: http://{shown}:{args.port}/  ({len(tasks)} task(s), recording into "
          f"{args.out}; Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, workers=1)
    finally:
        web.close()  # the lifespan already did it on a clean stop; idempotent
    return 0


def cmd_compare(args) -> int:
    from annobc.web.compare import compare, format_table

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    result = compare(args.datasets, split=args.split, tasks=tasks, by_persona=args.by_persona)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result), end="")
    return 0


def add_commands(sub) -> None:
    """Add the ``serve`` and ``compare`` subcommands to the ``annobc`` parser."""
    s = sub.add_parser("serve", help="record people annotating in the browser (local web app)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; anything else prints a warning)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--tasks", default="all", help="'all' or a comma-separated list of task ids")
    s.add_argument("--out", default="data/human",
                   help="dataset folder the sessions are recorded into (default data/human)")
    s.add_argument("--scale", type=int, default=4, help="integer display scale (default 4)")
    s.add_argument("--screen", type=_screen, default=DEFAULT_SCREEN, help="WxH, default 160x128")
    s.add_argument("--theme", default=None,
                   help="GUI theme (default: the GUI variant's; a name overrides it)")
    s.add_argument("--ui-variant", type=_ui_variant, default=DEFAULT_VARIANT, metavar="NAME",
                   help="GUI variant of every session (docs/tasks/variants.md; default: default)")
    s.add_argument("--param", action="append", metavar="TASK.NAME=VALUE",
                   help="a task parameter other than its default, as annobc generate --param "
                        "(repeatable), e.g. neuron_tracking.instance=DIR to serve imported data")
    s.add_argument("--step-cap", type=int, default=1000, help="clicks after which a session ends")
    s.add_argument("--seed-start", type=int, default=30_000_000,
                   help="session n uses scene seed SEED_START + n (default 30,000,000)")
    s.add_argument("--split", default="train", choices=["train", "val", "test"],
                   help="split the recorded episodes go to (default train)")
    s.add_argument("--replay", action="append", default=[], metavar="DIR",
                   help="another dataset the replay pages can show (repeatable)")
    s.add_argument("--store-frames", action="store_true",
                   help="also materialise the frames each person saw (survives renderer changes)")
    s.add_argument("--log-level", default="warning",
                   choices=["critical", "error", "warning", "info", "debug"])
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("compare", help="the human-study table: datasets' behaviour side by side")
    s.add_argument("datasets", nargs="+", metavar="DATASET", help="dataset folders")
    s.add_argument("--split", default=None, choices=["train", "val", "test"],
                   help="only this split (default: all episodes)")
    s.add_argument("--tasks", default=None, help="comma-separated task ids (default: all present)")
    s.add_argument("--by-persona", action="store_true",
                   help="one column per (dataset, persona) instead of per dataset")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_compare)
