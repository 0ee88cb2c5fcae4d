"""Env throughput with rendering, one core, default screen, per task.

Replays the virtual annotator's clicks through ``AnnotationEnv.step`` (hit-test, state machine,
full frame render, observation copy) and reports the median steps/s over repeats, plus the cost of
``reset`` (scene generation + first frame). Writes benchmarks/results/env_throughput.json.

    .venv/bin/python benchmarks/env_throughput.py [--episodes 30] [--repeats 5] [--tasks a,b]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, save_results  # noqa: E402

import annobc  # noqa: E402,F401
from annobc.env import AnnotationEnv  # noqa: E402
from annobc.gui import DEFAULT_SCREEN  # noqa: E402
from annobc.tasks import run_annotator, task_ids  # noqa: E402

TARGET = 5000
# A quoted figure for a browser-driven simulator of the same screen (click + screenshot, as the
# published study's simulators work) on this kind of machine. Quoted, not measured here: no browser
# simulator is part of this project.
BROWSER_STEPS_PER_S = 60


def bench_task(task_id: str, episodes: int, repeats: int) -> dict:
    recs = [run_annotator(task_id, seed) for seed in range(episodes)]
    env = AnnotationEnv(task_id)
    actions = [[np.array(c) for c in r.clicks] for r in recs]
    n_steps = sum(len(a) for a in actions)
    rates, reset_ms = [], []
    for _ in range(repeats):
        step_time = 0.0
        for r, acts in zip(recs, actions):
            t0 = time.perf_counter()
            env.reset(seed=r.seed)
            t1 = time.perf_counter()
            for a in acts:
                env.step(a)
            step_time += time.perf_counter() - t1
            reset_ms.append((t1 - t0) * 1e3)
        rates.append(n_steps / step_time)
    med = float(np.median(rates))
    mean_len = n_steps / episodes
    return {
        "steps_per_s_median": round(med, 1),
        "steps_per_s_repeats": [round(r, 1) for r in rates],
        "us_per_step": round(1e6 / med, 2),
        "reset_ms_median": round(float(np.median(reset_ms)), 3),
        "mean_episode_steps": round(mean_len, 1),
        "reset_share_of_episode": round(float(np.median(reset_ms)) / 1e3 /
                                        (mean_len / med + float(np.median(reset_ms)) / 1e3), 4),
        "steps_measured": n_steps * repeats,
        "meets_target": med >= TARGET,
        "vs_browser_simulator": round(med / BROWSER_STEPS_PER_S, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "env_throughput.json"))
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    tasks = task_ids() if args.tasks == "all" else args.tasks.split(",")
    results = {}
    for t in tasks:
        results[t] = bench_task(t, args.episodes, args.repeats)
        r = results[t]
        print(f"{t:<32} {r['steps_per_s_median']:>9.0f} steps/s  {r['us_per_step']:>7.1f} us/step  "
              f"reset {r['reset_ms_median']:.2f} ms  {'ok' if r['meets_target'] else 'BELOW TARGET'}",
              flush=True)
    out = {
        "benchmark": "env_throughput",
        "what": "AnnotationEnv.step with full rendering, annotator click sequences, one core",
        "screen": list(DEFAULT_SCREEN),
        "episodes_per_task": args.episodes,
        "repeats": args.repeats,
        "target_steps_per_s": TARGET,
        "browser_simulator_steps_per_s_quoted": BROWSER_STEPS_PER_S,
        "machine": describe(),
        "results": results,
    }
    save_results(args.out, out)


if __name__ == "__main__":
    main()
