"""What a policy's markers are, closed loop on colored_dot_tracking.

Plays each run's policy on the same scenes (the test split's seeds, or the val split's with
``--split val`` to choose a setting such as the temperature; the run's dataset params) and labels
every marker left at the end:

- match: within 2 px of a requested dot, on its brightest slice (what the score counts)
- duplicate: a second match of an already matched dot
- off-centre: 2-5 px from a requested dot, on its brightest slice
- slice off N: within 5 px of a requested dot, N slices from its brightest
- distractor: within 5 px of a dot of another colour
- background: anywhere else

With the mean F1, success rate, episode length and DONE rate, and the requested dots never matched.

    .venv/bin/python benchmarks/colored_dot_closed_loop.py NAME=RUN_DIR [NAME=RUN_DIR ...]
        [--episodes 40] [--temperature 0.4 [T ...]] [--split test|val]
        [--out benchmarks/results/colored_dot_closed_loop_<what it measures>.json]
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import (describe, named_runs_parser, policy_and_scenes,  # noqa: E402
                     runs_at_temperatures, save_results)

from annobc.eval.closed_loop import closed_loop  # noqa: E402

TASK = "colored_dot_tracking"


def marker_classes(task) -> tuple[collections.Counter, int]:
    """Label each marker of a finished episode; also return how many requested dots none matched."""
    c: collections.Counter = collections.Counter()
    matched: set[int] = set()
    for u, v, z in task.ann:
        dist, j = min((np.hypot(u - d.x, v - d.y), j) for j, d in enumerate(task.targets))
        d = task.targets[j]
        if dist <= 2 and z == d.peak:
            c["duplicate" if j in matched else "match"] += 1
            matched.add(j)
        elif dist <= 5 and z == d.peak:
            c["off-centre"] += 1
        elif dist <= 5:
            c[f"slice off {abs(z - d.peak)}"] += 1
        elif any(np.hypot(u - e.x, v - e.y) <= 5 for e in task.distractors):
            c["distractor"] += 1
        else:
            c["background"] += 1
    return c, len(task.targets) - len(matched)


def evaluate_run(run: str, episodes: int, temperature: float, split: str = "test") -> dict:
    model, state, params, seeds = policy_and_scenes(run, TASK, split, episodes)
    cfg = model.cfg
    rollouts = closed_loop(model, [TASK], seeds, temperature,
                           300, (cfg.screen_w, cfg.screen_h), params={TASK: params})[TASK]
    markers: collections.Counter = collections.Counter()
    missed = targets = 0
    for r in rollouts:
        c, m = marker_classes(r.session.task)
        markers.update(c)
        missed += m
        targets += len(r.session.task.targets)
    recs = [r.record for r in rollouts]
    return {
        "run": run, "step": state["step"],
        "train": {k: state["train_config"]["data"][k] for k in ("path", "category_weighting", "task_weights")}
        | {"model_overrides": state["train_config"]["model"]["overrides"],
           "init_from": state["train_config"]["model"].get("init_from", "")},
        "split": split, "episodes": episodes, "temperature": temperature,
        "success_rate": float(np.mean([r.success for r in recs])),
        "mean_f1": float(np.mean([r.score for r in recs])),
        "done_rate": float(np.mean([r.done for r in recs])),
        "mean_length": float(np.mean([len(r) for r in recs])),
        "requested_dots": targets, "never_matched": missed,
        "markers": dict(markers.most_common()),
    }


def main() -> None:
    args, runs = named_runs_parser(__doc__, episodes=40)()
    results = {}
    for name, run, temperature in runs_at_temperatures(runs, args.temperature):
        results[name] = r = evaluate_run(run, args.episodes, temperature, args.split)
        kinds = ", ".join(f"{k} {v}" for k, v in r["markers"].items())
        print(f"{name}: success {r['success_rate']:.1%}, F1 {r['mean_f1']:.3f}, length "
              f"{r['mean_length']:.1f}, DONE {r['done_rate']:.0%}; {r['never_matched']} of "
              f"{r['requested_dots']} requested dots never matched; markers: {kinds}", flush=True)
    if args.out:
        save_results(args.out, {"benchmark": "colored_dot_closed_loop", "machine": describe(),
                                "results": results})


if __name__ == "__main__":
    main()
