"""The ``annobc`` command line: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from annobc.gui import DEFAULT_SCREEN


# The module that each optional extra brings, so that a missing one is named in one line.
EXTRA_OF_MODULE = {"torch": "train", "safetensors": "train", "matplotlib": "train",
                   "starlette": "web", "uvicorn": "web", "httpx": "web", "playwright": "web",
                   "tifffile": "import", "zarr": "import", "pandas": "import", "tables": "import"}
# annobc.eval.takeover.MODES, spelled out so that building the parser does not import torch.
MODES = ("takeover", "dagger")


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


def _ui_variant(text: str) -> str:
    from annobc.gui import get_variant

    try:
        return get_variant(text).name
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _ui_variants(text: str) -> str:
    from annobc.gui import resolve_variants

    try:
        resolve_variants(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _progress(iterable, total: int, desc: str, unit: str = "ep"):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False,
                disable=None)  # None: off when stderr is not a terminal


# -- tasks ---------------------------------------------------------------------------------------
def cmd_tasks(args) -> int:
    from annobc.env import env_id
    from annobc.tasks import get_task_class, task_ids, task_origin

    rows = []
    for tid in task_ids():
        cls = get_task_class(tid)
        rows.append({"task": tid, "env_id": env_id(tid), "origin": task_origin(tid),
                     "buttons": [b.label for b in cls.buttons],
                     "personas": list(cls.personas), "instruction": cls.instruction})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["task"]) for r in rows)
    for r in rows:
        print(f"{r['task']:<{width}}  {r['env_id']:<40}  {r['origin']:<20}  {r['instruction']}")
    return 0


# -- play ----------------------------------------------------------------------------------------
def cmd_play(args) -> int:
    from annobc.gui.gif import save_gif
    from annobc.tasks import run_annotator

    frames: list = []
    rec = run_annotator(args.task, args.seed, args.persona, screen_size=args.screen, frames=frames,
                        ui_variant=args.ui_variant)
    path = save_gif(frames, rec.clicks, args.out, scale=args.scale, max_frames=args.max_frames)
    summary = {"task": rec.task_id, "seed": rec.seed, "persona": rec.persona,
               "ui_variant": rec.ui_variant, "clicks": len(rec), "score": rec.score,
               "success": rec.success, "gif": str(path)}
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
    from annobc.data import Plan, generate, parse_task_params, resolve_tasks

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
                persona=args.persona, screen=args.screen, shard_size=args.shard_size,
                params=parse_task_params(args.param), ui_variant=args.ui_variant)
    card = generate(args.out, plan, workers=args.workers)
    if args.json:
        print(json.dumps({k: card[k] for k in card if k != "features"}, indent=2))
    else:
        print(format_dataset_stats(card))
        print(f"wrote {args.out}")
    return 0


# -- eval ----------------------------------------------------------------------------------------
def cmd_eval(args) -> int:
    from annobc.eval.evaluate import evaluate, results_table

    tasks = "all" if args.tasks == "all" else [t.strip() for t in args.tasks.split(",")]
    res = evaluate(args.checkpoint, tasks, args.episodes, args.temperature, args.max_steps,
                   args.out, args.data, args.gifs, args.tf_windows, args.recovery_seeds, args.device,
                   ui_variant=args.ui_variant)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(results_table(res))
        print(f"report: {res['out_dir']}/report.md")
    return 0


# -- takeover ------------------------------------------------------------------------------------
def cmd_takeover(args) -> int:
    from annobc.eval.takeover import add_takeover_episodes, describe
    from annobc.learning.checkpoint import load_policy

    model, state = load_policy(args.checkpoint, args.device)
    data = args.data or state["train_config"]["data"]["path"]
    out = []
    for task in [t.strip() for t in args.tasks.split(",")]:
        bar = _progress(None, args.episodes, f"{args.mode} {task}") if not args.json else None
        out.append(add_takeover_episodes(model, data, task, args.episodes, args.temperature,
                                         args.seed, args.rollin_max or None,
                                         name=f"step{state['step']}", device=args.device,
                                         progress=bar, mode=args.mode))
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for r in out:
            print(f"{describe(r)} of {data}")
    return 0


# -- demo ----------------------------------------------------------------------------------------
def cmd_demo(args) -> int:
    from annobc.demo import run_demo

    return run_demo(args)


# -- import --------------------------------------------------------------------------------------
def cmd_import(args) -> int:
    from annobc.importers.command import run

    return run(args)


# -- train and check-task ------------------------------------------------------------------------
def cmd_train(args) -> int:
    from annobc.train.command import run

    return run(args)


def cmd_check_task(args) -> int:
    from annobc.tasks.contract import check_task

    bar = None if args.json else (lambda name: print(f"  ... {name}", file=sys.stderr, flush=True))
    r = check_task(args.task, args.seeds, progress=bar)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        for c in r["checks"]:
            fig = c["figure"]
            fig = f"{fig:.3f}" if isinstance(fig, float) else fig
            print(f"{'PASS' if c['passed'] else 'FAIL'}  {c['name']}: {fig} (required {c['required']})")
        print(f"{args.task}: {'passed' if r['passed'] else 'FAILED'} the task contract")
    return 0 if r["passed"] else 1


# -- study -------------------------------------------------------------------------------------------
# annobc.study.STUDIES and SCALES, spelled out so that building the parser does not import torch.
STUDY_NAMES, STUDY_SCALES = ("emergence", "scaling", "transfer", "probes", "real", "variants"), ("micro", "paper")


def cmd_study(args) -> int:
    from annobc.study import plan_study, run_study
    from annobc.study.common import parse_settings

    settings = parse_settings(args.settings)
    if args.held_out:
        if args.name != "transfer":
            raise CLIError("--held-out is a setting of the transfer study only")
        settings["held_out"] = args.held_out
    if args.source:
        if args.name != "real":
            raise CLIError("--source is a setting of the real study only")
        settings["source"] = args.source
    if args.plan:
        print(json.dumps(plan_study(args.name, args.scale, args.out, settings), indent=2))
        return 0
    res = run_study(args.name, args.scale, args.out, settings)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"study {args.name} ({args.scale}): report {res['out_dir']}/report.md, "
              f"results {res['out_dir']}/results.json")
    return 0


# -- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from annobc import __version__

    p = argparse.ArgumentParser(prog="annobc", description=__doc__)
    p.add_argument("--version", action="version", version=f"annobc {__version__}")
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
    s.add_argument("--ui-variant", type=_ui_variant, default="default", metavar="NAME",
                   help="GUI variant (docs/tasks/variants.md; default: default)")
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
    s.add_argument("--param", action="append", metavar="TASK.NAME=VALUE",
                   help="a task parameter other than its default, e.g. colored_dot_tracking.n_targets=[4,8]")
    s.add_argument("--screen", type=parse_screen, default=DEFAULT_SCREEN)
    s.add_argument("--ui-variant", type=_ui_variants, default="default", metavar="NAME|all",
                   help="GUI variant(s): a name, a comma-separated list, or 'all' (episodes spread "
                        "over them, recorded per episode; docs/tasks/variants.md)")
    s.add_argument("--json", action="store_true", help="print the dataset card as JSON")
    s.set_defaults(func=cmd_generate)

    from annobc.train.command import USAGE, add_arguments

    s = sub.add_parser("train", help="train the click policy: annobc train CONFIG [key=value ...]",
                       epilog=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(s)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("check-task", help="run the task contract (annotator, replay, expert) on a "
                                          "task, e.g. a plugin's")
    s.add_argument("task", type=_task_id)
    s.add_argument("--seeds", type=int, default=50, help="seeds per check (default: 50)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_check_task)

    from annobc.web.cli import add_commands

    add_commands(sub)  # serve, compare

    from annobc.importers.command import add_arguments as add_import_arguments

    s = sub.add_parser("import", help="your own data as task instances: annobc import "
                                      "neuron|pose|tracks ... --out DIR")
    add_import_arguments(s)
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("eval", help="teacher-forced + closed-loop evaluation of a checkpoint")
    s.add_argument("checkpoint", help="run folder, checkpoints folder, or one checkpoint folder")
    s.add_argument("--tasks", default="all")
    s.add_argument("--episodes", type=int, default=100, help="closed-loop test episodes per task (default: 100)")
    s.add_argument("--temperature", type=float, default=0.4)
    s.add_argument("--max-steps", type=int, default=300, help="click cap per closed-loop episode")
    s.add_argument("--data", default=None, help="dataset (default: the one the run trained on)")
    s.add_argument("--out", default=None, help="output folder (default: <run>/eval)")
    s.add_argument("--gifs", type=int, default=2, help="GIFs per task")
    s.add_argument("--tf-windows", type=int, default=1024, help="teacher-forced windows per task (val)")
    s.add_argument("--recovery-seeds", type=int, default=20)
    s.add_argument("--device", default="cpu")
    s.add_argument("--ui-variant", type=_ui_variant, default=None, metavar="NAME",
                   help="GUI variant of the closed-loop episodes (default: the dataset's, where it "
                        "has one, else default)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("takeover", help="DAgger-style data: the policy rolls in, the annotator "
                                        "finishes; added to the dataset as a train shard")
    s.add_argument("checkpoint", help="run folder, checkpoints folder, or one checkpoint folder")
    s.add_argument("--data", default=None, help="dataset to add to (default: the run's)")
    s.add_argument("--tasks", default="colored_dot_tracking",
                   help="comma-separated task ids whose annotator can take over")
    s.add_argument("--episodes", type=int, default=200, help="takeover episodes per task")
    s.add_argument("--mode", choices=MODES, default="takeover",
                   help="takeover: the annotator finishes after the policy's roll-in; dagger: the "
                        "policy plays on and the annotator labels each of its clicks")
    s.add_argument("--rollin-max", type=int, default=0,
                   help="most policy clicks (before the annotator takes over) (0: 1.5x the task's "
                        "mean annotator episode length)")
    s.add_argument("--temperature", type=float, default=0.4)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_takeover)

    s = sub.add_parser("demo", help="the whole loop on a CPU: generate, train, evaluate, report")
    s.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    s.add_argument("--tasks", default="all")
    # Episodes cost seconds (frames are rendered from seeds while training), and more distinct
    # scenes generalise better than the same scenes seen again.
    s.add_argument("--episodes-per-task", type=int, default=1000,
                   help="annotator episodes per task (default: 1000)")
    s.add_argument("--config", default="cpu_demo", help="a shipped config by name, or a YAML file")
    s.add_argument("--steps", type=int, default=2000,
                   help="training steps (a fixed number, so the policy does not depend on the "
                        "machine's speed; default: 2000)")
    s.add_argument("--eval-episodes", type=int, default=30, help="closed-loop test episodes per task")
    s.add_argument("--eval-max-steps", type=int, default=300)
    s.add_argument("--temperature", type=float, default=0.4)
    s.add_argument("--gifs", type=int, default=1)
    s.add_argument("--tf-windows", type=int, default=1024, help="teacher-forced windows per task (val)")
    s.add_argument("--recovery-seeds", type=int, default=20)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--rounds", type=int, default=0,
                   help="DAgger rounds after --steps: the policy plays, the annotator labels its "
                        "states, training goes on (0: none; docs/experiments.md has what rounds "
                        "measured)")
    s.add_argument("--round-episodes", type=int, default=100, help="DAgger episodes per task per round")
    s.add_argument("--round-steps", type=int, default=500, help="training steps per round")
    s.add_argument("--round-warmup", type=int, default=20, help="warm-up steps of each round's training")
    s.add_argument("--round-mode", choices=MODES, default="dagger",
                   help="dagger (default) or takeover episodes (see annobc takeover --mode)")
    s.add_argument("--check-episodes", type=int, default=20,
                   help="with rounds: closed-loop test seeds per task after each round")
    s.add_argument("--param", action="append", metavar="TASK.NAME=VALUE",
                   help="a task parameter other than its default (recorded in the dataset card); "
                        "the demo sets colored_dot_tracking.n_targets=[4, 8] unless overridden")
    s.add_argument("overrides", nargs="*", help="training config overrides section.key=value")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("study", help="one finding of the study, end to end: train, evaluate, report "
                                     "(resumable)")
    s.add_argument("name", choices=STUDY_NAMES)
    s.add_argument("--scale", choices=STUDY_SCALES, default="micro",
                   help="micro: 2 CPU cores, <= 90 min; paper: the published setup (GPUs, torchrun)")
    s.add_argument("--out", default=None, help="study folder (default: runs/study/NAME-SCALE); "
                                               "rerun to continue a killed study")
    s.add_argument("--set", dest="settings", action="append", metavar="KEY=VALUE",
                   help="a setting of the scale's preset, e.g. train_steps=500 (annobc.study.PRESETS)")
    s.add_argument("--held-out", dest="held_out", action="append", metavar="TASK",
                   help="transfer: a task to hold out (repeat for several; a plugin task too); "
                        "replaces the preset's list, as --set held_out=[A, B] does")
    s.add_argument("--source", choices=("neuron", "tracks", "pose"), default=None,
                   help="real: the real-format input (synthesised, then imported): neuron (TIFF "
                        "stack + SWC), tracks (Cell Tracking Challenge), pose (DeepLabCut); "
                        "as --set source=NAME")
    s.add_argument("--plan", action="store_true",
                   help="print the runs it would make (configs, models, estimated GPU-hours) and exit")
    s.add_argument("--json", action="store_true", help="print results.json")
    s.set_defaults(func=cmd_study)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (CLIError, ValueError, FileNotFoundError) as e:
        print(f"annobc {args.command}: error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        missing = (e.name or "").split(".")[0]
        extra = EXTRA_OF_MODULE.get(missing)
        if extra is None:
            raise
        print(f"annobc {args.command} needs the [{extra}] extra (no module {missing!r}): "
              f"pip install 'annobc[{extra}]'", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
