"""How far the annotators' clicks hang on coins the screen does not show: counterfactual ambiguity.

    nice -n 19 .venv/bin/python benchmarks/decision_ambiguity.py [--tasks all|a,b] [--seeds 50]

The policy learnt from these demonstrations sees the last 8 frames and its previous clicks. Where
the annotator's next click depends on something else (a coin it flips, a plan it made long ago, the
ground truth) the policy cannot imitate it, only average over it. This benchmark measures that by
counterfactual, on the default persona's episodes (seeds 0..N-1; colored_dot_tracking with the
demo's ``n_targets=[4, 8]``, annobc/demo.py DEMO_PARAMS):

- at every step, before the annotator A clicks, two **clones** of A are made (``copy.deepcopy``:
  A's memory, plans and click-noise generator; the session and everything its task owns are
  shared, so the clones watch the same screen). A clone keeps A's outcome for every decision key
  A has already drawn (:meth:`annobc.tasks.Annotator.draw`) and draws every new key from another
  decision seed. From then on each clone says, at every state of A's episode, what it would click;
  it is dropped at the first click that differs from A's, or after 32 steps.
- two clicks **differ** when they hit different elements, or canvas points more than 3 px apart.
- **R0** at step t: the share of the clones made at t that click differently from A at t. The click
  hangs on a coin flipped right now (nothing on the screen differs).
- **R8**: the same for the clones made at t-8 that matched A's clicks at t-8..t-1, i.e. saw the same
  last 8 frames and made the same last 8 clicks. R8 > 0 means the next click is not a function of
  what the policy sees. It is a lower bound: a clone also keeps A's memory from before t-8, and
  coins drawn in the annotator's ``__init__`` are never redrawn.
- **R32**: clones made at t-32. For t < 8 (t < 32) R8 (R32) uses the clones made at reset, which
  saw the whole episode. Steps where no clone of that age survived are left out of the means.

Per task (results[task]):

- ``overall``: R0, R8, R32 over all steps; ``R8_element_change``: R8 on the steps whose element
  differs from the previous click's (where the policy has to decide to do something else).
- ``by_decision``: per decision type (A's click: ``place/<phase>`` for canvas clicks, with
  ``:mistake`` when it made a wrong annotation; ``<category>:<button>/<phase>`` for view and select
  buttons; ``<category>/<phase>`` for the others; ``UNDO``; ``DONE``) n, R0, R8, R32 and
  ``label_differs``: the share of those states where the DAgger labeller
  (:meth:`Annotator.expert`, fed every state of the episode in order, as in annobc.eval) would
  click something else than the demonstration.
- ``done``: n, R8, R32 at A's DONE, and the clicks between the last annotating click and DONE
  (mean, median, share more than 8: then the last 8 frames no longer show the last annotation).
- ``undo``: n, R8, ``changes_canvas`` (the share of UNDOs after which the canvas area of the frame
  differs: what it removes was drawn), and the clicks since the latest wrong annotation (mean,
  median, max, over the UNDOs that follow one).
- ``aliasing``: steps whose last 8 frames (frame hashes, fewer at the start) and previous element
  are identical to another step's of the same episode with a different next click (element, or
  canvas point on a 4-px grid). Across episodes every scene differs, so this is within-episode.
- ``mistakes``: the share of clicks that made a wrong annotation, and of episodes with one.
- ``success_rate``, ``steps``, ``mean_length``, ``clone_errors`` (clone clicks that raised; left
  out), ``seconds``.

Writes benchmarks/results/decision_ambiguity.json and prints a markdown table. On 2 cores, 50 seeds
on the nine tasks take about 10 minutes.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, save_results  # noqa: E402

from annobc.data import parse_task_params, resolve_tasks  # noqa: E402
from annobc.demo import DEMO_PARAMS  # noqa: E402
from annobc.tasks import Session, frame_hash, get_annotator_class  # noqa: E402
from annobc.tasks.episode import annotator_rng  # noqa: E402

PARAMS = parse_task_params(DEMO_PARAMS)  # the demo's scenes: task id -> parameter overrides
CLONES = 2  # clones made per step
WINDOWS = (0, 8, 32)  # clone ages reported (R0, R8, R32); the oldest is also the longest kept
CANVAS_PX = 3.0  # canvas clicks further apart than this differ
ALIAS_GRID = 4  # canvas clicks on the same cell of this grid count as the same next click
MAX_STEPS = 600


# -- clones -------------------------------------------------------------------------------------
def alt_seed(seed: tuple[int, int], k: int) -> tuple[int, int]:
    """Another decision seed for clone ``k`` (the same formula as the audit's, so same clones)."""
    s, c = seed
    return s, (c ^ (0x9E3779B1 * (k + 11))) & 0xFFFFFFFF


def record_draws(annotator) -> set[str]:
    """Wrap ``annotator.draw`` so that the keys it draws are recorded; returns the set of them."""
    drawn: set[str] = set()
    draw = annotator.draw

    def recording_draw(key):
        drawn.add(repr(key))
        return draw(key)

    annotator.draw = recording_draw
    return drawn


def world_memo(session: Session) -> dict[int, Any]:
    """A deepcopy memo that keeps the world shared: the session and what it owns (layout, mapper),
    its task and everything the task owns (ground truth, caches, the annotation states on its undo
    stack). The annotators compare
    annotation states by identity (``task.ann is before``: annobc.tasks.Task, planned_undo), so a
    clone must hold the very objects the task does, and it must see the task change as A does."""
    task = session.task
    shared: list[Any] = [session, task, task.ann, *vars(session).values()]
    for v in vars(task).values():
        shared.append(v)
        if isinstance(v, (list, tuple)):
            shared.extend(v)
    return {id(o): o for o in shared}


def make_clone(annotator, memo: dict[int, Any], drawn: set[str], seed: tuple[int, int]):
    """A copy of ``annotator`` (its memory as of now) that keeps the outcome of every decision key
    drawn so far and draws every other key from decision seed ``seed``."""
    clone = copy.deepcopy(annotator, dict(memo))  # deepcopy adds to its memo: a fresh one each time
    decided = frozenset(drawn)
    clone._decision_seed = seed
    # The class's draw, bound to each: the original's outcome for the keys already drawn, the
    # clone's own seed for the others (the copied instance attribute is A's recording wrapper).
    original = type(annotator).draw.__get__(annotator)
    own = type(clone).draw.__get__(clone)
    clone.draw = lambda key: original(key) if repr(key) in decided else own(key)
    return clone


def differ(session: Session, a, b) -> bool:
    """Whether two intents are different clicks: other elements, or canvas points > CANVAS_PX."""
    ea, _ = session.hit(a.x, a.y)
    eb, _ = session.hit(b.x, b.y)
    if ea != eb:
        return True
    return ea == "canvas" and float(np.hypot(a.x - b.x, a.y - b.y)) > CANVAS_PX


# -- one episode --------------------------------------------------------------------------------
def measure_episode(task_id: str, seed: int, persona: str = "default", params: Any = None,
                    reseed: bool = True, max_steps: int = MAX_STEPS) -> dict:
    """Play one annotator episode, measuring every step's R0/R8/R32 and the DAgger label.

    ``reseed=False`` gives the clones A's own decision seed: a control, every R is then 0.
    Returns ``{"steps": [...], "success": bool, "clone_errors": int}``; each step holds the click's
    element, category, phase, the annotation flags, ``R`` ({window: share or None}),
    ``label_differs``, ``key`` (for aliasing) and, for UNDO, ``changes_canvas``.
    """
    params = PARAMS.get(task_id) if params is None else params
    session = Session(task_id, seed, params)
    task = session.task
    acls = get_annotator_class(task_id)
    pers = session.task_cls.personas[persona]
    a = acls(session, pers, annotator_rng(seed, persona))
    drawn = record_draws(a)
    labeller = acls.expert(session, pers, annotator_rng(seed, f"{persona}:label"))
    c = session.layout.canvas
    oldest = max(WINDOWS)

    steps: list[dict] = []
    hashes: list[str] = []
    active: list[tuple[Any, int]] = []  # (clone, step it was made at), clicking as A so far
    errors = 0
    frame = session.render()
    while not task.done and len(steps) < max_steps:
        t = len(steps)
        hashes.append(frame_hash(frame))
        memo = world_memo(session)
        for k in range(CLONES):
            seed_k = alt_seed(a._decision_seed, k) if reseed else a._decision_seed
            active.append((make_clone(a, memo, drawn, seed_k), t))
        intent = a.next_intent()
        # Every clone clicks in this state; by age, whether it differs. Those that differ, and the
        # oldest, are dropped: an older one no longer shares A's last clicks (or is not needed).
        verdicts: dict[int, list[bool]] = defaultdict(list)
        kept = []
        for clone, t0 in active:
            try:
                d = differ(session, intent, clone.next_intent())
            except Exception:  # a clone in a state its plans did not foresee: count, leave out
                errors += 1
                continue
            verdicts[t - t0].append(d)
            if not d and t - t0 < oldest:
                kept.append((clone, t0))
        active = kept
        label_differs = differ(session, intent, labeller.next_intent())
        element, category = session.hit(intent.x, intent.y)
        res = session.step(intent.x, intent.y)
        before, frame = frame, session.render()
        r = {}
        for w in WINDOWS:
            v = verdicts.get(min(w, t))
            r[w] = float(np.mean(v)) if v else None
        step = dict(element=element, category=category, phase=intent.phase,
                    x=intent.x, y=intent.y, is_mistake=bool(res.effect.wrong),
                    annotated=bool(res.effect.annotated), R=r, label_differs=label_differs)
        if element == "UNDO":
            step["changes_canvas"] = bool(np.any(before[c.y0:c.y1, c.x0:c.x1]
                                                 != frame[c.y0:c.y1, c.x0:c.x1]))
        steps.append(step)
    score, success = task.score()
    for i, s in enumerate(steps):
        prev = steps[i - 1]["element"] if i else None
        s["key"] = (tuple(hashes[max(0, i - 7):i + 1]), prev)
    return dict(steps=steps, success=bool(success), clone_errors=errors)


# -- figures ------------------------------------------------------------------------------------
def _mean(v) -> float | None:
    v = [float(x) for x in v if x is not None]
    return round(float(np.mean(v)), 4) if v else None


def _rates(steps: list[dict]) -> dict:
    return {f"R{w}": _mean(s["R"][w] for s in steps) for w in WINDOWS}


def decision_type(s: dict) -> str:
    if s["element"] == "canvas":
        return f"place/{s['phase']}" + (":mistake" if s["is_mistake"] else "")
    if s["element"] in ("UNDO", "DONE"):
        return s["element"]
    if s["category"] in ("view", "select"):
        return f"{s['category']}:{s['element']}/{s['phase']}"
    return f"{s['category']}/{s['phase']}"


def next_click(s: dict):
    if s["element"] == "canvas":
        return "canvas", s["x"] // ALIAS_GRID, s["y"] // ALIAS_GRID
    return s["element"]


def summarise(episodes: list[dict]) -> dict:
    """The per-task figures (see the module docstring) from :func:`measure_episode`'s records."""
    all_steps = [s for e in episodes for s in e["steps"]]
    change, by_type = [], defaultdict(list)
    done, to_done, undo, undo_delay = [], [], [], []
    aliased = 0
    for e in episodes:
        st = e["steps"]
        next_by_key = defaultdict(set)
        for s in st:
            next_by_key[s["key"]].add(next_click(s))
        aliased += sum(len(next_by_key[s["key"]]) > 1 for s in st)
        last_ann = last_mistake = -1
        for i, s in enumerate(st):
            if i == 0 or s["element"] != st[i - 1]["element"]:
                change.append(s)
            by_type[decision_type(s)].append(s)
            if s["element"] == "DONE":
                done.append(s)
                to_done.append(i - last_ann - 1)
            elif s["element"] == "UNDO":
                undo.append(s)
                if last_mistake >= 0:
                    undo_delay.append(i - last_mistake)
            last_ann = i if s["annotated"] else last_ann
            last_mistake = i if s["is_mistake"] else last_mistake
    types = {}
    for k, v in sorted(by_type.items(), key=lambda kv: -len(kv[1])):
        types[k] = {"n": len(v), **_rates(v), "label_differs": _mean(s["label_differs"] for s in v)}
    n = len(all_steps)
    return {
        "episodes": len(episodes), "steps": n, "mean_length": round(n / max(1, len(episodes)), 1),
        "success_rate": _mean(e["success"] for e in episodes),
        "overall": {**_rates(all_steps), "label_differs": _mean(s["label_differs"] for s in all_steps)},
        "R8_element_change": _mean(s["R"][8] for s in change), "element_change_steps": len(change),
        "by_decision": types,
        "done": {"n": len(done), "R8": _mean(s["R"][8] for s in done),
                 "R32": _mean(s["R"][32] for s in done),
                 "clicks_after_last_annotation": {
                     "mean": _mean(to_done), "median": float(np.median(to_done)) if to_done else None,
                     "share_over_8": _mean(x > 8 for x in to_done)}},
        "undo": {"n": len(undo), "R8": _mean(s["R"][8] for s in undo),
                 "changes_canvas": _mean(s["changes_canvas"] for s in undo),
                 "clicks_since_mistake": {
                     "n": len(undo_delay), "mean": _mean(undo_delay),
                     "median": float(np.median(undo_delay)) if undo_delay else None,
                     "max": max(undo_delay) if undo_delay else None}},
        "aliasing": {"steps": aliased, "of": n},
        "mistakes": {"click_share": _mean(s["is_mistake"] for s in all_steps),
                     "episodes_with_one": _mean(any(s["is_mistake"] for s in e["steps"])
                                                for e in episodes)},
        "clone_errors": sum(e["clone_errors"] for e in episodes),
    }


def measure_task(task_id: str, seeds, persona: str = "default", reseed: bool = True) -> dict:
    t0 = time.perf_counter()
    out = summarise([measure_episode(task_id, s, persona, reseed=reseed) for s in seeds])
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def _f(x, nd=3) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


HEADER = ("| task | success | steps | R0 | R8 | R32 | R8 element change | DONE R8 | clicks to DONE "
          "(mean, >8) | UNDO n | UNDO R8 | UNDO changes canvas | aliasing | mistake clicks |\n"
          + "|---" * 14 + "|")


def row(task_id: str, r: dict) -> str:
    o, d, u = r["overall"], r["done"], r["undo"]
    c = d["clicks_after_last_annotation"]
    return (f"| {task_id} | {_f(r['success_rate'], 2)} | {r['steps']} | {_f(o['R0'])} | "
            f"{_f(o['R8'])} | {_f(o['R32'])} | {_f(r['R8_element_change'])} | {_f(d['R8'], 2)} | "
            f"{_f(c['mean'], 1)}, {_f(c['share_over_8'], 2)} | {u['n']} | {_f(u['R8'], 2)} | "
            f"{_f(u['changes_canvas'], 2)} | {r['aliasing']['steps']} | "
            f"{_f(r['mistakes']['click_share'])} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tasks", default="all", help="all, or task ids separated by commas")
    ap.add_argument("--seeds", type=int, default=50, help="episodes per task (seeds 0..N-1)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "decision_ambiguity.json"))
    args = ap.parse_args(argv)
    tasks = resolve_tasks(args.tasks)
    print(HEADER, flush=True)
    results, rows = {}, []
    for t in tasks:
        results[t] = measure_task(t, range(args.seeds))
        rows.append(row(t, results[t]))
        print(rows[-1], flush=True)
    save_results(args.out, {
        "benchmark": "decision_ambiguity", "persona": "default", "seeds": args.seeds,
        "params": {t: PARAMS[t] for t in tasks if t in PARAMS}, "clones_per_step": CLONES,
        "windows": list(WINDOWS), "canvas_px": CANVAS_PX, "max_steps": MAX_STEPS,
        "machine": describe(), "table": "\n".join([HEADER, *rows]), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
