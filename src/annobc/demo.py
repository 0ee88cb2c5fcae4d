"""``annobc demo``: the whole loop on a CPU (annobc.loop): generate a nine-task dataset with the
virtual annotators, train the CPU preset a fixed number of steps, optionally DAgger rounds, then
evaluate teacher-forced and closed loop and write a report. The CLI parses its arguments
(annobc.cli.main) and calls :func:`run_demo`; rerun with the same arguments to resume."""

from __future__ import annotations

import time
from pathlib import Path

from annobc.data import resolve_tasks
from annobc.eval.evaluate import results_table
from annobc.loop import Loop, LoopSpec

# The demo's scene ranges where they differ from the task defaults (later --param values win):
# colored_dot_tracking with 4-8 requested dots (the default 12-18 matches the human click counts; a
# closed-loop success needs every dot right, so the small policy is shown the task's smaller range).
DEMO_PARAMS = ["colored_dot_tracking.n_targets=[4, 8]"]


def run_demo(args) -> int:
    t0 = time.perf_counter()
    out = Path(args.out)
    # A fixed number of steps, not minutes: the same seed gives the same policy on any machine
    # with the same arithmetic (bfloat16 autocast runs only where the CPU has it natively).
    spec = LoopSpec(tasks=resolve_tasks(args.tasks), episodes_per_task=args.episodes_per_task,
                    params=DEMO_PARAMS + (args.param or []), config=args.config,
                    overrides=list(args.overrides), steps=args.steps, rounds=args.rounds,
                    round_episodes=args.round_episodes, round_steps=args.round_steps,
                    round_warmup=args.round_warmup, round_mode=args.round_mode,
                    check_episodes=args.check_episodes, eval_episodes=args.eval_episodes,
                    temperatures=[args.temperature], max_clicks=args.eval_max_steps,
                    tf_windows=args.tf_windows, recovery_seeds=args.recovery_seeds, gifs=args.gifs,
                    seed=args.seed, workers=args.workers)
    state = Loop(out, spec).run()
    final = state["stages"][f"eval/{args.temperature:g}"]["result"]
    print(results_table(final))
    print(f"demo finished in {(time.perf_counter() - t0) / 60:.1f} min "
          f"({state['minutes_total']:.1f} min over all sittings); "
          f"report: {Path(final['out_dir']) / 'report.md'}")
    return 0
