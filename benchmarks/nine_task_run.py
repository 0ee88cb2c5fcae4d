"""One policy on all nine tasks: the CPU preset trained on every task alike, with DAgger rounds
(the policy plays every task, the annotator labels every state it reaches, training goes on), at
most 2 hours of training on 2 cores; then closed loop on 100 test seeds per task at temperature
0.4 and at 0 (argmax).

A resumable loop (annobc.loop) in ``--out``: start it in the background and rerun the same command
after a kill; it continues from the last checkpoint and keeps the rounds and evaluations it
finished, so it can span several sittings.

    nohup .venv/bin/python benchmarks/nine_task_run.py > runs/nine_task_run.log 2>&1 &

Writes benchmarks/results/nine_task_run.json (per task and temperature: success with its Wilson
interval against chance, DONE rate overall and of the successes, mistakes against the data's,
teacher-forced DONE and UNDO accuracy, success after every round) and prints the table that
docs/results.md carries.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, save_results  # noqa: E402

from annobc.data import resolve_tasks  # noqa: E402
from annobc.demo import DEMO_PARAMS  # noqa: E402
from annobc.loop import Loop, LoopSpec, stage_minutes, task_figures  # noqa: E402


def table(rows: dict, temperatures: list[float]) -> str:
    head = ["task", "chance"] + [f"success T={t:g} (95% CI)" for t in temperatures] + [
        "success by round", "done (of successes)", "mistakes (data's)", "TF DONE", "TF UNDO"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task, by_t in rows.items():
        first = by_t[f"{temperatures[0]:g}"]
        cl = first["closed_loop"]
        cells = [task, f"{100 * cl['chance_level']:.0f}%"]
        for t in temperatures:
            c = by_t[f"{t:g}"]["closed_loop"]
            lo, hi = c["success_ci95"]
            mark = "**" if c["above_chance"] else ""
            cells.append(f"{mark}{100 * c['success_rate']:.0f}%{mark} ({100 * lo:.0f}-{100 * hi:.0f})")
        rounds = first["success_by_round"]
        cells.append(" > ".join(f"{100 * v:.0f}%" for v in rounds) if rounds else "-")
        dws = cl["done_when_successful"]
        cells.append(f"{100 * cl['done_rate']:.0f}% ({'-' if dws is None else f'{100 * dws:.0f}%'})")
        cells.append(f"{100 * cl['mistake_rate']:.0f}% ({100 * cl['training_data']['mistake_rate']:.0f}%)")
        by_cat = first["teacher_forced"]["accuracy_by_category"] or {}
        cells += [f"{100 * by_cat[k]:.0f}%" if k in by_cat else "-" for k in ("done", "undo")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--episodes-per-task", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=10000, help="the first training")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--round-episodes", type=int, default=100, help="DAgger episodes per task per round")
    ap.add_argument("--round-steps", type=int, default=2000)
    ap.add_argument("--check-episodes", type=int, default=30, help="closed-loop seeds per task after each round")
    ap.add_argument("--eval-episodes", type=int, default=100)
    ap.add_argument("--temperatures", default="0.4,0")
    ap.add_argument("--config", default="cpu_demo")
    ap.add_argument("--out", default="runs/nine_task_run")
    ap.add_argument("--result", default="benchmarks/results/nine_task_run.json")
    ap.add_argument("--workers", type=int, default=2, help="data generation processes")
    ap.add_argument("overrides", nargs="*", help="training config overrides section.key=value")
    args = ap.parse_args(argv)
    temps = [float(t) for t in args.temperatures.split(",")]
    spec = LoopSpec(tasks=resolve_tasks(args.tasks), episodes_per_task=args.episodes_per_task,
                    params=list(DEMO_PARAMS), config=args.config, overrides=args.overrides,
                    steps=args.steps, rounds=args.rounds, round_episodes=args.round_episodes,
                    round_steps=args.round_steps, check_episodes=args.check_episodes,
                    eval_episodes=args.eval_episodes, temperatures=temps, workers=args.workers)
    state = Loop(args.out, spec).run()
    rows = {t: {f"{temp:g}": task_figures(state, t, temp) for temp in temps} for t in spec.tasks}
    md = table(rows, temps)
    save_results(args.result, {
        "what": "one policy on all nine tasks with DAgger rounds, closed loop on the test seeds",
        "command": "python benchmarks/nine_task_run.py " + " ".join(argv or sys.argv[1:]),
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "result")},
        "machine": describe(), "train_minutes": stage_minutes(state, "train"),
        "minutes": state["minutes_total"], "steps": spec.steps + spec.rounds * spec.round_steps,
        "tasks": rows, "table": md})
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
