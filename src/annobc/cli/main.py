"""The ``annobc`` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from annobc.gui import DEFAULT_SCREEN


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def parse_screen(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"screen size must look like 160x128, got {text!r}") from None
    return w, h


def _task_id(text: str) -> str:
    from annobc.tasks import task_ids

    if text not in task_ids():
        raise argparse.ArgumentTypeError(f"unknown task {text!r}; known tasks: {', '.join(task_ids())}")
    return text


def _progress(iterable, total: int, desc: str, unit: str = "ep"):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                disable=None)  # None: off when stderr is not a terminal


# -- tasks ---------------------------------------------------------------------------------------
def cmd_tasks(args) -> int:
    from annobc.env import env_id
    from annobc.tasks import get_task_class, task_ids

    rows = []
    for tid in task_ids():
        cls = get_task_class(tid)
        rows.append({"task": tid, "env_id": env_id(tid), "buttons": [b.label for b in cls.buttons],
                     "personas": list(cls.personas), "instruction": cls.instruction})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["task"]) for r in rows)
    for r in rows:
        print(f"{r['task']:<{width}}  {r['env_id']:<40}  {r['instruction']}")
    return 0


# -- play ----------------------------------------------------------------------------------------
def cmd_play(args) -> int:
    from annobc.gui.gif import save_gif
    from annobc.tasks import run_annotator

    frames: list = []
    rec = run_annotator(args.task, args.seed, args.persona, screen_size=args.screen, frames=frames)
    path = save_gif(frames, rec.clicks, args.out, scale=args.scale, max_frames=args.max_frames)
    summary = {"task": rec.task_id, "seed": rec.seed, "persona": rec.persona, "clicks": len(rec),
               "score": rec.score, "success": rec.success, "gif": str(path)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{rec.task_id} seed {rec.seed} ({rec.persona}): {len(rec)} clicks, score "
              f"{rec.score:.3f}, success {rec.success} -> {path}")
    return 0


# -- stats ---------------------------------------------------------------------------------------
def format_stats(s: dict) -> str:
    lines = [f"task            {s['task']}",
             f"episodes        {s['episodes']}",
             f"success rate    {s['success_rate']:.3f}",
             f"mean length     {s['mean_length']:.1f} clicks (range {s['length_range'][0]}-"
             f"{s['length_range'][1]})",
             f"correction rate {s['correction_rate']:.4f}  (undo / (place + undo))",
             f"mistake rate    {s['mistake_rate']:.4f}  (wrong annotations / annotations made)",
             "action mix      " + "  ".join(f"{k} {v:.3f}" for k, v in s["action_mix"].items() if v)]
    if s.get("reference"):
        lines.append("reference ranges:")
        for name, r in s["reference"].items():
            mark = "ok " if r["inside"] else "OUT"
            lines.append(f"  {mark} {name:<22} {r['value']:.4f}  in [{r['low']}, {r['high']}]")
    return "\n".join(lines)


def format_dataset_stats(card: dict) -> str:
    cats = ["navigate", "place", "view", "select", "undo", "done", "invalid"]
    head = (f"{'task':<30} {'eps':>5} {'succ':>6} {'len':>6} {'corr':>6} {'mist':>6}  "
            + " ".join(f"{c[:5]:>6}" for c in cats))
    lines = [f"dataset: {card.get('episodes')} episodes, {card.get('steps')} steps, schema "
             f"v{card['schema_version']}, renderer v{card['renderer_version']}, code "
             f"{card.get('code_version', '?')}", head]
    for t, s in card.get("stats", {}).items():
        lines.append(f"{t:<30} {s['episodes']:>5} {s['success_rate']:>6.3f} {s['mean_length']:>6.1f} "
                     f"{s['correction_rate']:>6.3f} {s['mistake_rate']:>6.3f}  "
                     + " ".join(f"{s['action_mix'][c]:>6.3f}" for c in cats))
    for split, r in card.get("seed_ranges", {}).items():
        lines.append(f"split {split:<5} seeds {r[0]}..{r[1]}" if r else f"split {split:<5} (empty)")
    return "\n".join(lines)


def cmd_stats(args) -> int:
    from pathlib import Path

    from annobc.tasks import run_annotator, task_ids
    from annobc.tasks.stats import episode_stats

    if Path(args.task).is_dir():
        from annobc.data import EpisodeStore

        card = EpisodeStore(args.task).card
        if args.json:
            print(json.dumps({k: card[k] for k in card if k not in ("features",)}, indent=2))
        else:
            print(format_dataset_stats(card))
        return 0
    if args.task not in task_ids():
        raise CLIError(f"{args.task!r} is neither a dataset folder nor a task; known tasks: "
                       f"{', '.join(task_ids())}")

    seeds = range(args.seed_start, args.seed_start + args.episodes)
    records = [run_annotator(args.task, s, args.persona, screen_size=args.screen)
               for s in _progress(seeds, args.episodes, f"{args.task}")]
    stats = episode_stats(records)
    stats["persona"] = args.persona
    stats["seeds"] = [args.seed_start, args.seed_start + args.episodes - 1]
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


# -- generate ------------------------------------------------------------------------------------
def cmd_generate(args) -> int:
    from annobc.data import Plan, generate, resolve_tasks

    if args.episodes_per_task < 1:
        raise CLIError(f"--episodes-per-task must be >= 1, got {args.episodes_per_task}")
    if args.workers < 1:
        raise CLIError(f"--workers must be >= 1, got {args.workers}")
    tasks = resolve_tasks(args.tasks)
    for t in tasks:
        from annobc.tasks import get_task_class

        if args.persona not in get_task_class(t).personas:
            raise CLIError(f"unknown persona {args.persona!r} for {t}")
    plan = Plan(tasks=tasks, episodes_per_task=args.episodes_per_task, seed=args.seed,
                persona=args.persona, screen=args.screen, shard_size=args.shard_size)
    card = generate(args.out, plan, workers=args.workers)
    if args.json:
        print(json.dumps({k: card[k] for k in card if k != "features"}, indent=2))
    else:
        print(format_dataset_stats(card))
        print(f"wrote {args.out}")
    return 0


# -- demo ----------------------------------------------------------------------------------------
def cmd_demo(args) -> int:
    """The main job. For now: the virtual annotator plays every task, one GIF each."""
    from pathlib import Path

    from annobc.gui.gif import save_gif
    from annobc.tasks import run_annotator, task_ids

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["| task | clicks | score | success | GIF |", "|---|---|---|---|---|"]
    for tid in _progress(task_ids(), len(task_ids()), "demo", "task"):
        frames: list = []
        rec = run_annotator(tid, args.seed, frames=frames)
        gif = save_gif(frames, rec.clicks, out / f"{tid}.gif", scale=2)
        lines.append(f"| {tid} | {len(rec)} | {rec.score:.3f} | {rec.success} | {gif.name} |")
        print(f"{tid}: {len(rec)} clicks, score {rec.score:.3f}, success {rec.success} -> {gif}")
    (out / "report.md").write_text("# annobc demo\n\n" + "\n".join(lines) + "\n")
    print(f"report: {out / 'report.md'}")
    return 0


# -- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="annobc", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("tasks", help="list the registered tasks")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_tasks)

    s = sub.add_parser("play", help="run the virtual annotator on one episode and write a GIF")
    s.add_argument("task", type=_task_id)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--persona", default="default")
    s.add_argument("--out", default="episode.gif", help="GIF path (default: episode.gif)")
    s.add_argument("--scale", type=int, default=2, help="GIF upscaling factor (default: 2)")
    s.add_argument("--max-frames", type=int, default=None, help="subsample long episodes")
    s.add_argument("--screen", type=parse_screen, default=DEFAULT_SCREEN, help="WxH, default 160x128")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_play)

    s = sub.add_parser("stats", help="behaviour statistics: of the annotator on TASK, or of a dataset DIR")
    s.add_argument("task", metavar="TASK|DIR")
    s.add_argument("--episodes", type=int, default=100)
    s.add_argument("--persona", default="default")
    s.add_argument("--seed-start", type=int, default=0)
    s.add_argument("--screen", type=parse_screen, default=DEFAULT_SCREEN)
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_stats)
    s = sub.add_parser("generate", help="generate an annotator dataset (parallel, resumable)")
    s.add_argument("--tasks", default="all", help="'all' or a comma-separated list of task ids")
    s.add_argument("--episodes-per-task", type=int, required=True)
    s.add_argument("--out", required=True, help="dataset folder (re-run the same command to resume)")
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--seed", type=int, default=0, help="base seed of the split seed ranges")
    s.add_argument("--persona", default="default")
    s.add_argument("--shard-size", type=int, default=50, help="episodes per Parquet shard")
    s.add_argument("--screen", type=parse_screen, default=DEFAULT_SCREEN)
    s.add_argument("--json", action="store_true", help="print the dataset card as JSON")
    s.set_defaults(func=cmd_generate)

    sub.add_parser("train", help="train the click policy: annobc train CONFIG.yaml [key=value ...]",
                   add_help=False)

    from annobc.web.cli import add_commands

    add_commands(sub)  # serve, compare

    s = sub.add_parser("demo", help="the main job on the embedded default")
    s.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":  # the training script owns its arguments (config + overrides)
        from annobc.train.train import main as train_main

        return train_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CLIError, ValueError, FileNotFoundError) as e:
        print(f"annobc {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
