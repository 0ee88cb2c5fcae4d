"""What a policy would click at the annotator's decision points on colored_dot_tracking.

Replays annotator test episodes and, at each of the annotator's clicks, asks the policy (teacher
forced, from the recorded history) for its click distribution at a temperature, summed per element:
the canvas (a marker) and each button. Clicks are grouped by situation:

- navigation and placement by the view's offset from the worked dot's brightest slice and the click
  before, e.g. ``+1 after -Z``: one slice past the peak, coming back (the annotator stepped 2 past
  and steps back once more; a policy that places there leaves a marker a slice off);
- the end of the episode: the final check (``MIP`` on, ``MIP`` off) and ``DONE``.

    .venv/bin/python benchmarks/colored_dot_decisions.py NAME=RUN_DIR [NAME=RUN_DIR ...]
        [--episodes 30] [--temperature 0.4 [T ...]] [--split test|val]
        [--out benchmarks/results/colored_dot_decisions_<what it measures>.json]
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from colored_dot_errors import last_step_batch  # noqa: E402
from machine import (describe, named_runs_parser, policy_and_scenes,  # noqa: E402
                     runs_at_temperatures, save_results)

from annobc.data.windows import EpisodeWindows  # noqa: E402
from annobc.tasks.episode import replay_session, run_annotator  # noqa: E402

TASK = "colored_dot_tracking"
ELEMENTS = ("canvas", "+Z", "-Z", "MIP", "UNDO", "DONE")


@torch.no_grad()
def element_probs(model, batch: dict, hit: np.ndarray, temperature: float) -> dict[str, float]:
    """The policy's click distribution for the window's last step, summed per screen element."""
    h, spatial = model.encode(batch)
    sp = spatial[:, -1] if spatial is not None else None
    h = model.read_target(h[:, -1:], sp[:, None] if sp is not None else None)[:, 0]
    logits = model.click_logits(h[:, None], sp[:, None] if sp is not None else None)
    if "pixel" in logits:
        p = F.softmax(logits["pixel"][0, 0] / temperature, -1).numpy()
    else:  # x/y head: the product of the two marginals
        px = F.softmax(logits["x"][0, 0] / temperature, -1).numpy()
        py = F.softmax(logits["y"][0, 0] / temperature, -1).numpy()
        p = (py[:, None] * px[None, :]).ravel()
    return {e: float(p[hit == e].sum()) for e in ELEMENTS}


def situation(step, prev, z: int, task, from_end: int) -> str | None:
    if from_end <= 3 and step.phase in ("verify", "finish"):
        return f"end: {step.element} ({from_end} from the end)"
    if step.target < 0 or step.category not in ("navigate", "place") or step.is_mistake \
            or step.phase == "correct":
        return None
    off = z - task.targets[step.target].peak
    if abs(off) > 2:
        return None
    return f"{off:+d} after {prev.element if prev is not None else 'start'}"


def evaluate_run(run: str, episodes: int, temperature: float, split: str = "test") -> dict:
    model, state, params, seeds = policy_and_scenes(run, TASK, split, episodes)
    cfg = model.cfg
    probs: dict[tuple[str, str], list[dict]] = collections.defaultdict(list)
    for seed in seeds:
        rec = run_annotator(TASK, seed, params=params)
        s = replay_session(rec)
        frames, zs = [], []
        for x, y in rec.clicks:
            frames.append(s.render().copy())
            zs.append(s.task.z)
            s.step(x, y)
        windows = EpisodeWindows.from_record(rec, np.stack(frames + [s.render()]))
        hit = np.array([[s.layout.hit(x, y) or "" for x in range(cfg.screen_w)]
                        for y in range(cfg.screen_h)], dtype=object).ravel()
        for i, st in enumerate(rec.steps):
            key = situation(st, rec.steps[i - 1] if i else None, zs[i], s.task, len(rec) - i)
            if key is not None:
                p = element_probs(model, last_step_batch(windows, i, cfg.window), hit, temperature)
                probs[(key, st.element)].append(p)
    rows = {f"{k} -> annotator {e}": {"n": len(v)} | {el: round(float(np.mean([p[el] for p in v])), 3)
                                                   for el in ELEMENTS}
            for (k, e), v in sorted(probs.items())}
    return {"run": run, "step": state["step"], "split": split, "episodes": episodes,
            "temperature": temperature,
            "model_overrides": state["train_config"]["model"]["overrides"], "situations": rows}


def main() -> None:
    args, runs = named_runs_parser(__doc__, episodes=30)()
    results = {}
    for name, run, temperature in runs_at_temperatures(runs, args.temperature):
        results[name] = r = evaluate_run(run, args.episodes, temperature, args.split)
        print(f"{name} (step {r['step']}): P(click on ...) per situation, annotator's click last")
        for k, row in r["situations"].items():
            if row["n"] >= 5:
                print(f"  {k:42s} n={row['n']:4d}  " + " ".join(f"{e}={row[e]:.2f}" for e in ELEMENTS))
    if args.out:
        save_results(args.out, {"benchmark": "colored_dot_decisions", "machine": describe(),
                                "results": results})


if __name__ == "__main__":
    main()
