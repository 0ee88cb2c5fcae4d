"""A policy's teacher-forced errors on colored_dot_tracking, on annotator test episodes.

Every click of the annotator is predicted from its recorded history (argmax).

- Placements: a miss (more than 5 px away) is labelled by where it lands: a button (with the phase
  of the step before), the other of two unmarked dots peaking on this slice (order), a dot peaking on
  a neighbouring or farther slice, a dot already marked, a distractor of another colour, background.
- Navigation: accuracy per (button, phase, button clicked before), e.g. ``-Z inspect after +Z``:
  turning back after stepping past the brightest slice, which repeating the last click never gets.

    .venv/bin/python benchmarks/colored_dot_errors.py RUN_DIR [--episodes 12] [--params JSON] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json

import numpy as np
import torch

from annobc.data.windows import EpisodeWindows
from annobc.tasks.episode import replay_session, run_annotator
from annobc.train.checkpoint import load_policy

TASK = "colored_dot_tracking"
TEST_SEEDS = 20_000_000  # the test split's first seed


def last_step_batch(windows: EpisodeWindows, t: int, k: int) -> dict:
    """The k-step window ending at step t, as a batch of one for ``predict``."""
    w = windows.window(t, k)
    return {key: torch.from_numpy(np.asarray(w[key]))[None] for key in ("frames", "prev_xy", "bos", "valid")}


def classify(session, z: int, markers, prev_phase, pred) -> str:
    el = session.layout.hit(*pred)
    if el != "canvas":
        return f"button {el} (step before: {prev_phase})"
    task = session.task
    u, v = session.mapper.to_data(*pred)
    near = [d for d in task.targets if np.hypot(u - d.x, v - d.y) <= 3]
    if near:
        d = near[0]
        if any(np.hypot(a - d.x, b - d.y) <= 2 and az == d.peak for a, b, az in markers):
            return "dot already marked"
        if d.peak == z:
            return "other dot peaking on this slice (order)"
        return "dot peaking on a neighbouring slice" if abs(d.peak - z) == 1 else "dot peaking farther"
    if any(np.hypot(u - d.x, v - d.y) <= 3 for d in task.distractors):
        return "distractor (other colour)"
    return "background"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("run", help="run folder or checkpoint")
    ap.add_argument("--episodes", type=int, default=12)
    ap.add_argument("--params", default="{}", help='task params as JSON, e.g. \'{"n_targets": [4, 8]}\'')
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    model, _ = load_policy(args.run)
    model.eval()
    counts: collections.Counter = collections.Counter()
    nav: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for seed in range(TEST_SEEDS, TEST_SEEDS + args.episodes):
        rec = run_annotator(TASK, seed, params=json.loads(args.params))
        s = replay_session(rec)
        frames, states = [], []
        for (x, y), st in zip(rec.clicks, rec.steps):
            frames.append(s.render().copy())
            states.append((s.task.z, tuple(s.task.ann), st.category))
            s.step(x, y)
        windows = EpisodeWindows.from_record(rec, np.stack(frames + [s.render()]))
        clicks = rec.clicks
        for i, (z, markers, category) in enumerate(states):
            if category not in ("place", "navigate"):
                continue
            pred = tuple(model.predict(last_step_batch(windows, i, model.cfg.window))[0].tolist())
            before = rec.steps[i - 1].element if i else None
            if category == "navigate":
                key = f"{rec.steps[i].element} {rec.steps[i].phase} after {before}"
                nav[key][0] += s.layout.hit(*pred) == rec.steps[i].element
                nav[key][1] += 1
            elif np.hypot(pred[0] - clicks[i][0], pred[1] - clicks[i][1]) <= 5:
                counts["hit (within 5 px)"] += 1
            else:
                counts[classify(s, z, markers, rec.steps[i - 1].phase if i else None, pred)] += 1
    total = sum(counts.values())
    nav_rows = sorted(nav.items(), key=lambda kv: -kv[1][1])
    out = {"run": args.run, "episodes": args.episodes, "params": json.loads(args.params),
           "placements": total, "placement_share": {k: round(v / total, 4) for k, v in counts.most_common()},
           "navigation_accuracy": {k: {"right": a, "n": n} for k, (a, n) in nav_rows}}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{total} placements in {args.episodes} test episodes of {TASK}")
    for k, v in counts.most_common():
        print(f"  {k:45s} {v:5d}  {v / total:6.1%}")
    print("navigation clicks: predicted the same button")
    for k, (a, n) in nav_rows:
        print(f"  {k:45s} {a:4d}/{n:<4d} {a / n:6.1%}")


if __name__ == "__main__":
    main()
