"""A GIF of a policy's shortest perfect colored-dot episode, closed loop (for the docs).

    .venv/bin/python scripts/colored_dot_policy_gif.py RUN_DIR OUT.gif [--episodes 40]
        [--temperature 0.4]

Rolls the policy out on the first test seeds of its dataset's split (the scenes the closed-loop
benchmark uses, with the dataset's task parameters), all in one batch, and writes the shortest
episode that ends perfect. Exits 1 if none does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from machine import policy_and_scenes  # noqa: E402

from annobc.eval.closed_loop import closed_loop  # noqa: E402
from annobc.gui.gif import save_gif  # noqa: E402

TASK = "colored_dot_tracking"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("out")
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--temperature", type=float, default=0.4)
    args = ap.parse_args()
    model, _, params, seeds = policy_and_scenes(args.run, TASK, "test", args.episodes)
    screen = (model.cfg.screen_w, model.cfg.screen_h)
    rollouts = closed_loop(model, [TASK], seeds, args.temperature, 300, screen,
                           gifs_per_task=len(seeds), params={TASK: params})[TASK]
    wins = [r for r in rollouts if r.record.success]
    print(f"{len(wins)} of {len(rollouts)} perfect: seeds {[r.record.seed for r in wins]}")
    if not wins:
        return 1
    best = min(wins, key=lambda r: len(r.record))
    path = save_gif(best.frames, best.record.clicks, args.out, scale=2, ms_per_frame=150,
                    max_frames=90)
    print(f"seed {best.record.seed}, {len(best.record)} clicks -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
