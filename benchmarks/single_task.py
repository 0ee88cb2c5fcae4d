"""What each task needs: every task trained alone with the CPU preset for the same step budget,
then closed loop on the field's 100 test seeds.

Each task is one resumable loop (annobc.loop) in ``<out>/<task>``: killed and rerun, it skips the
tasks and stages it finished and resumes a training from its last checkpoint, so the nine can span
several sittings. After each task the results file is rewritten with every task finished so far.

Per task: closed-loop success (Wilson 95% CI) against the task's chance level, score, DONE rate
(overall and of the successful episodes), length against the data's, mistake and correction rates
against the data's; teacher-forced placement, per-category accuracy and, per button, how often it
is predicted and what is predicted instead (the decision that goes wrong); mistake recovery.

    .venv/bin/python benchmarks/single_task.py [--tasks all] [--steps 900] [--rounds 0]
        [--out runs/single_task] [--result benchmarks/results/single_task.json]

About 15 minutes per task on 2 cores at 900 steps (data, training, evaluation).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, save_results  # noqa: E402

from annobc.data import resolve_tasks  # noqa: E402
from annobc.demo import DEMO_PARAMS  # noqa: E402
from annobc.loop import Loop, LoopSpec, task_figures  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--episodes-per-task", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=0, help="DAgger rounds after the first training")
    ap.add_argument("--round-steps", type=int, default=300)
    ap.add_argument("--round-episodes", type=int, default=100)
    ap.add_argument("--eval-episodes", type=int, default=100)
    ap.add_argument("--temperature", type=float, default=0.4)
    ap.add_argument("--config", default="cpu_demo")
    ap.add_argument("--out", default="runs/single_task")
    ap.add_argument("--result", default="benchmarks/results/single_task.json")
    ap.add_argument("overrides", nargs="*", help="training config overrides section.key=value")
    args = ap.parse_args(argv)
    settings = {k: v for k, v in vars(args).items() if k not in ("tasks", "out", "result")}
    rows = {}
    if Path(args.result).exists():  # tasks finished in an earlier sitting with the same settings
        old = json.loads(Path(args.result).read_text())
        if old.get("settings") == settings:
            rows = old["tasks"]
    for task in resolve_tasks(args.tasks):
        print(f"== {task}", flush=True)
        spec = LoopSpec(tasks=[task], episodes_per_task=args.episodes_per_task,
                        params=[p for p in DEMO_PARAMS if p.startswith(task + ".")],
                        config=args.config, overrides=args.overrides, steps=args.steps,
                        rounds=args.rounds, round_steps=args.round_steps,
                        round_episodes=args.round_episodes, eval_episodes=args.eval_episodes,
                        temperatures=[args.temperature], gifs=0, workers=2)
        state = Loop(Path(args.out) / task, spec).run()
        rows[task] = task_figures(state, task, args.temperature)
        save_results(args.result, {
            "what": "each task trained alone with the CPU preset, closed loop on its test seeds",
            "command": "python benchmarks/single_task.py " + " ".join(argv or sys.argv[1:]),
            "settings": settings,
            "machine": describe(), "tasks": rows})
        cl = rows[task]["closed_loop"]
        lo, hi = cl["success_ci95"]
        print(f"   {task}: success {cl['success_rate']:.1%} ({lo:.0%}-{hi:.0%}), done "
              f"{cl['done_rate']:.0%}, mistakes {cl['mistake_rate']:.0%} "
              f"(data {cl['training_data']['mistake_rate']:.0%})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
