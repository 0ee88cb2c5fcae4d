"""``annobc demo``: the whole loop on a CPU: generate a nine-task dataset with the virtual
annotators, train the CPU preset, optionally add takeover or DAgger episodes and train on,
evaluate teacher-forced and closed loop, and write a report. The CLI parses its arguments
(annobc.cli.main) and calls :func:`run_demo`."""

from __future__ import annotations

import time
from pathlib import Path

from annobc.data import Plan, generate, parse_task_params, resolve_tasks
from annobc.eval.evaluate import evaluate, results_table
from annobc.eval.takeover import add_takeover_episodes, describe
from annobc.learning.checkpoint import load_policy
from annobc.train.config import load_config
from annobc.train.train import train

# The demo's scene ranges where they differ from the task defaults (later --param values win):
# colored_dot_tracking with 4-8 requested dots (the default 12-18 matches the human click counts; a
# closed-loop success needs every dot right, so the small policy is shown the task's smaller range).
DEMO_PARAMS = ["colored_dot_tracking.n_targets=[4, 8]"]


def run_demo(args) -> int:
    """The main job: generate a nine-task dataset, train the CPU preset, add takeover episodes and
    train on, evaluate, report."""

    t0 = time.perf_counter()
    out = Path(args.out)
    tasks = resolve_tasks(args.tasks)
    takeover = tasks if args.takeover_episodes else []
    first_steps = args.steps - (args.takeover_steps if takeover else 0)
    if first_steps <= 0:
        raise ValueError(f"--takeover-steps ({args.takeover_steps}) must be less than --steps "
                         f"({args.steps})")
    print(f"[1/4] generating {args.episodes_per_task} annotator episodes per task for "
          f"{len(tasks)} tasks -> {out / 'data'}", flush=True)
    generate(out / "data", Plan(tasks=tasks, episodes_per_task=args.episodes_per_task,
                                seed=args.seed, params=parse_task_params(DEMO_PARAMS + (args.param or []))),
             workers=args.workers)
    cfg_path = args.config
    # A fixed number of steps, not minutes: the same seed gives the same policy on any machine.
    overrides = [f"data.path={out / 'data'}", f"run.out_dir={out}", "run.name=train",
                 f"run.seed={args.seed}", "optim.max_minutes=0", *args.overrides]
    cfg = load_config(cfg_path, overrides + [f"optim.max_steps={first_steps}"])
    print(f"[2/4] training the {cfg.model.preset} preset for {first_steps} steps -> {cfg.run_dir}",
          flush=True)
    summary = train(cfg)
    print(f"      trained {summary['step']} steps in {summary['minutes']} min", flush=True)
    if takeover:
        # DAgger-style: the policy rolls in, the annotator finishes; then train on from these
        # weights with the grown dataset.
        print(f"[3/4] {args.takeover_episodes} {args.takeover_mode} episodes per task, then "
              f"{args.takeover_steps} more steps", flush=True)
        model, _ = load_policy(str(cfg.run_dir))
        for t in takeover:
            r = add_takeover_episodes(model, out / "data", t, args.takeover_episodes,
                                      args.temperature, args.seed, name=f"step{summary['step']}",
                                      mode=args.takeover_mode)
            print(f"      {describe(r)}", flush=True)
        cfg = load_config(cfg_path, overrides + [
            "run.name=train_takeover", f"model.init_from={cfg.run_dir}",
            f"optim.max_steps={args.takeover_steps}", f"optim.warmup_steps={args.takeover_warmup}"])
        summary = train(cfg)
        print(f"      trained {summary['step']} more steps in {summary['minutes']} min", flush=True)
    else:
        print("[3/4] no takeover episodes (--takeover-episodes 0)", flush=True)
    print(f"[4/4] evaluating on {args.eval_episodes} test episodes per task", flush=True)
    res = evaluate(str(cfg.run_dir), tasks, args.eval_episodes, args.temperature, args.eval_max_steps,
                   out=str(out), gifs_per_task=args.gifs, tf_windows=args.tf_windows,
                   recovery_seeds=args.recovery_seeds)
    print(results_table(res))
    print(f"demo finished in {(time.perf_counter() - t0) / 60:.1f} min; report: {out / 'report.md'}")
    return 0
