"""A GIF of a trained policy solving a task closed loop: the shortest successful episode among the
first N test scenes of the dataset the run trained on.

    .venv/bin/python scripts/policy_gif.py RUN TASK OUT.gif [--episodes 40] [--temperature 0.4]

Deterministic: the same run, task and arguments give the same GIF, byte for byte.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from annobc.eval.closed_loop import closed_loop
from annobc.gui.gif import save_gif
from annobc.learning.checkpoint import load_policy


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("task")
    ap.add_argument("out")
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--temperature", type=float, default=0.4)
    args = ap.parse_args()
    model, state = load_policy(args.run)
    card = json.loads((Path(state["train_config"]["data"]["path"]) / "dataset.json").read_text())
    first, _ = card["seed_ranges"]["test"]
    seeds = list(range(first, first + args.episodes))
    screen = (model.cfg.screen_w, model.cfg.screen_h)
    rollouts = closed_loop(model, [args.task], seeds, args.temperature, 300, screen,
                           gifs_per_task=len(seeds),
                           params={args.task: card["tasks"][args.task]["params"]})[args.task]
    wins = [r for r in rollouts if r.record.success]
    print(f"{len(wins)} of {len(rollouts)} successful: seeds {[r.record.seed for r in wins]}")
    if not wins:
        return 1
    best = min(wins, key=lambda r: len(r.record))
    path = save_gif(best.frames, best.record.clicks, args.out, scale=2, ms_per_frame=150,
                    max_frames=90)
    print(f"seed {best.record.seed}, {len(best.record)} clicks -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
