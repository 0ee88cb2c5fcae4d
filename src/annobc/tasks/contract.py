"""The expert contract: what every task's annotator must do from any state, measured.

Three figures, each a function here so that the tests (small counts), ``annobc check-task`` and
``benchmarks/expert_contract.py`` (200 seeds) measure the same thing:

- :func:`own_state_agreement`: over annotator episodes of a persona with its mistakes off, how
  often a second annotator of the same episode (another click-noise generator, labelling only)
  names the click the script made: the same element, and a canvas click within twice the persona's
  noise radius (both clicks are noisy). Shows that demonstrations are the expert policy run.
- :func:`foreign_state_success`: roll in ``n`` clicks that are not the annotator's (uniformly
  random clicks on elements other than DONE, or the annotator with its mistakes tripled and never
  noticed), then the expert (:meth:`~annobc.tasks.annotator.Annotator.resume`) finishes: how often
  the episode succeeds within the click cap.
- :func:`mistake_removal`: from a state that holds an uncorrected wrong annotation, how often the
  expert removes it within the task's ``correction_length`` clicks.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from annobc.tasks.annotator import Annotator, Intent
from annobc.tasks.episode import annotator_rng
from annobc.tasks.registry import get_annotator_class, get_task_class
from annobc.tasks.session import Session

MAX_CLICKS = 600  # an episode's click cap, roll-in included
ROLLIN_KINDS = ("random", "mistakes")


def _annotator(session: Session, persona_name: str, stream: str, transform: Callable | None = None,
               expert: bool = False) -> Annotator:
    cls = get_annotator_class(session.task_id)
    persona = session.task_cls.personas[persona_name]
    if transform is not None:
        persona = transform(persona)
    rng = annotator_rng(session.task.seed, f"{persona_name}:{stream}")
    return cls.expert(session, persona, rng) if expert else cls(session, persona, rng)


def clicks_agree(session: Session, a: Intent, b: Intent, radius: float) -> bool:
    """Whether two clicks do the same thing: the same element; on the canvas, within ``radius``
    data pixels of each other."""
    ea, _ = session.hit(a.x, a.y)
    eb, _ = session.hit(b.x, b.y)
    if ea != eb:
        return False
    if ea != "canvas":
        return True
    ua, va = session.mapper.to_data(a.x, a.y)
    ub, vb = session.mapper.to_data(b.x, b.y)
    return float(np.hypot(ua - ub, va - vb)) <= radius


def own_state_agreement(task_id: str, seeds, persona: str = "default", params=None,
                        screen_size=None, max_clicks: int = MAX_CLICKS) -> dict:
    """The share of steps of mistake-free annotator episodes at which the expert labels the
    click the script made (module docstring)."""
    agree = steps = 0
    disagreements: list[dict] = []
    kw = {} if screen_size is None else {"screen_size": screen_size}
    for seed in seeds:
        s = Session(task_id, seed, params, **kw)
        actor = _annotator(s, persona, "default", lambda p: p.without_mistakes())
        labeller = _annotator(s, persona, "label", expert=True)
        # A canvas click is within place_max of its aim; two of them within twice that, plus the
        # rounding of each to a screen pixel.
        radius = 2 * actor.persona.place_max + 2 * max(s.mapper.sx, s.mapper.sy)
        for intent in actor.script():
            label = labeller.next_intent()
            ok = clicks_agree(s, intent, label, radius)
            agree += ok
            steps += 1
            if not ok and len(disagreements) < 20:
                disagreements.append({"seed": int(seed), "step": s.steps, "phase": intent.phase,
                                      "script": s.hit(intent.x, intent.y)[0],
                                      "label": s.hit(label.x, label.y)[0]})
            s.step(intent.x, intent.y)
            if s.done or s.steps >= max_clicks:
                break
    return {"agreement": agree / max(steps, 1), "steps": steps, "episodes": len(list(seeds)),
            "disagreements": disagreements}


def random_element_click(session: Session, rng: np.random.Generator) -> tuple[int, int]:
    """A uniformly random element other than DONE (each button, or the canvas), clicked at its
    centre or, for the canvas, at a uniform point of it."""
    labels = [b.label for b in session.task_cls.buttons if b.label != "DONE"]
    i = int(rng.integers(len(labels) + 1))
    if i == len(labels):
        c = session.layout.canvas
        return int(rng.integers(c.x0, c.x1)), int(rng.integers(c.y0, c.y1))
    r = session.layout.buttons[labels[i]]
    return r.x0 + r.w // 2, r.y0 + r.h // 2


def roll_in(session: Session, kind: str, n: int, persona: str = "default", seed: int = 0) -> int:
    """Make ``n`` clicks that are not the expert's (module docstring); stops early rather than
    press DONE. Returns the clicks made."""
    if kind == "random":
        rng = np.random.default_rng([int(seed), 9])
        for _ in range(n):
            session.step(*random_element_click(session, rng))
        return n
    if kind != "mistakes":
        raise ValueError(f"unknown roll-in {kind!r}; known: {', '.join(ROLLIN_KINDS)}")
    actor = _annotator(session, persona, "rollin",
                       lambda p: p.with_mistakes_scaled(3.0).never_noticing())
    made = 0
    for intent in actor.script():
        if made >= n or session.hit(intent.x, intent.y)[0] == "DONE":
            break
        session.step(intent.x, intent.y)
        made += 1
    return made


def finish_with_expert(session: Session, persona: str = "default",
                       max_clicks: int = MAX_CLICKS) -> None:
    expert = _annotator(session, persona, "resume", expert=True)
    for intent in expert.resume():
        if session.steps >= max_clicks:
            break
        session.step(intent.x, intent.y)
        if session.done:
            break


def foreign_state_success(task_id: str, seeds, kind: str, n: int, persona: str = "default",
                          params=None, max_clicks: int = MAX_CLICKS) -> dict:
    """Roll in ``n`` foreign clicks of ``kind``, let the expert finish: success rate and lengths."""
    wins, lengths, failed = 0, [], []
    for seed in seeds:
        s = Session(task_id, seed, params)
        roll_in(s, kind, n, persona, seed)
        finish_with_expert(s, persona, max_clicks)
        ok = bool(s.done and s.task.score()[1])
        wins += ok
        lengths.append(s.steps)
        if not ok:
            failed.append(int(seed))
    count = len(lengths)
    return {"kind": kind, "n": n, "success": wins / max(count, 1), "episodes": count,
            "median_clicks": float(np.median(lengths)) if lengths else 0.0,
            "max_clicks": int(max(lengths)) if lengths else 0, "failed_seeds": failed[:20]}


def state_with_mistake(task_id: str, seed: int, persona: str = "default", params=None,
                       max_clicks: int = MAX_CLICKS) -> Session | None:
    """The annotator, mistakes tripled and never noticed, run until its first wrong annotation
    stands; None if it made none."""
    s = Session(task_id, seed, params)
    actor = _annotator(s, persona, "mistake", lambda p: p.with_mistakes_scaled(3.0).never_noticing())
    for intent in actor.script():
        if s.hit(intent.x, intent.y)[0] == "DONE" or s.steps >= max_clicks:
            return None
        s.step(intent.x, intent.y)
        if s.task.n_wrong() > 0:
            return s
    return None


def mistake_removal(task_id: str, cases: int = 50, persona: str = "default", params=None,
                    max_seeds: int | None = None) -> dict:
    """From states holding a wrong annotation, how often the expert removes it within the task's
    ``correction_length`` clicks (and how many clicks it took)."""
    limit = max_seeds if max_seeds is not None else 20 * cases
    removed, lengths, seed, found = 0, [], 0, 0
    while found < cases and seed < limit:
        s = state_with_mistake(task_id, seed, persona, params)
        seed += 1
        if s is None:
            continue
        found += 1
        wrong = s.task.n_wrong()
        expert = _annotator(s, persona, "resume", expert=True)
        clicks = 0
        for intent in expert.resume():
            s.step(intent.x, intent.y)
            clicks += 1
            if s.task.n_wrong() < wrong or s.done or clicks > 4 * s.task_cls.correction_length:
                break
        fixed = s.task.n_wrong() < wrong
        lengths.append(clicks if fixed else -1)
        removed += fixed and clicks <= s.task_cls.correction_length
    return {"removal_rate": removed / max(found, 1), "cases": found, "seeds_tried": seed,
            "correction_length": get_task_class(task_id).correction_length,
            "median_clicks": float(np.median([x for x in lengths if x >= 0])) if any(
                x >= 0 for x in lengths) else None,
            "not_removed": sum(x < 0 for x in lengths)}


# -- the whole contract, for one task (annobc check-task) ------------------------------------------
def undo_states(task_id: str, seeds, persona: str = "default"):
    """At every UNDO of the persona's demonstrations, (the session in the state before it, the
    DAgger labeller's intent there): where the two should agree (one correction rule)."""
    from annobc.tasks.episode import run_annotator
    cls = get_annotator_class(task_id)
    for seed in seeds:
        rec = run_annotator(task_id, seed, persona)
        s = Session(task_id, seed)
        labeller = cls.expert(s, s.task_cls.personas[persona], np.random.default_rng(seed))
        for st in rec.steps:
            intent = labeller.next_intent()
            if st.element == "UNDO":
                yield s, intent
            s.step(st.x, st.y)


def _check(name: str, figure, passed: bool, required: str) -> dict:
    return {"name": name, "figure": figure, "passed": bool(passed), "required": required}


def check_task(task_id: str, n_seeds: int = 50, progress=None) -> dict:
    """Every check of the task contract on one task, with its figure: what
    tests/tasks/test_task_contract.py and test_expert_contract.py assert for the built-in tasks,
    runnable on a plugin task with ``annobc check-task TASK_ID``. ``progress(name)`` is called
    before each check."""
    from annobc.tasks.base import BUTTON_CATEGORIES, PHASES
    from annobc.tasks.episode import frame_hash, replay, run_annotator
    from annobc.tasks.stats import episode_stats

    cls = get_task_class(task_id)
    checks = []

    def step(name):
        if progress is not None:
            progress(name)

    step("declaration")
    labels = [b.label for b in cls.buttons]
    doc = cls.__doc__ or ""
    missing = [s for s in ("Description", "Action Space", "Observation Space", "Rewards",
                           "Episode End", "Arguments", "Version History") if f"## {s}" not in doc]
    checks.append(_check("declares buttons, docstring sections, personas",
                         {"missing_sections": missing, "buttons": labels},
                         "UNDO" in labels and "DONE" in labels and not missing
                         and "default" in cls.personas and len(cls.personas) >= 2
                         and all(b.category in BUTTON_CATEGORIES for b in cls.buttons),
                         "UNDO and DONE buttons, the Gymnasium docstring sections, >= 2 personas"))
    step("annotator episodes")
    episodes = [run_annotator(task_id, seed) for seed in range(n_seeds)]
    stats = episode_stats(episodes)
    lengths = [len(e) for e in episodes]
    checks.append(_check("annotator success", stats["success_rate"],
                         stats["success_rate"] >= 0.98, ">= 0.98"))
    checks.append(_check("correction rate", stats["correction_rate"],
                         0.01 <= stats["correction_rate"] <= 0.15, "0.01-0.15"))
    checks.append(_check("episode length", [min(lengths), max(lengths)],
                         min(lengths) >= 50 and max(lengths) <= 600 and all(e.done for e in episodes),
                         "50-600 clicks, ending with DONE"))
    phases = {s.phase for e in episodes for s in e.steps}
    checks.append(_check("phases", sorted(phases),
                         phases <= set(PHASES) and {"finish", "correct"} <= phases and len(phases) >= 4,
                         "from the shared vocabulary, finish and correct among >= 4"))
    step("replay")
    frames: list = []
    rec = run_annotator(task_id, 7, frames=frames)
    same = [frame_hash(f) for f in replay(rec)] == [frame_hash(f) for f in frames]
    checks.append(_check("replay is bit-identical", same, same, "every frame"))
    step("random clicking")
    rng = np.random.default_rng(0)
    wins = []
    for seed in range(20):
        s = Session(task_id, seed)
        for _ in range(300):
            s.step(int(rng.integers(s.layout.width)), int(rng.integers(s.layout.height)))
            if s.done:
                break
        wins.append(s.task.score()[1])
    checks.append(_check("uniform random clicking succeeds at most at chance", float(np.mean(wins)),
                         np.mean(wins) <= cls.chance_level + 0.15,
                         f"<= chance_level + 0.15 = {cls.chance_level + 0.15:.2f}"))
    step("own states")
    own = own_state_agreement(task_id, range(min(n_seeds, 20)))
    checks.append(_check("own states: the expert names the script's click", own["agreement"],
                         own["agreement"] >= 0.99, ">= 0.99"))
    seeds = range(1000, 1000 + min(n_seeds, 50))
    for kind in ROLLIN_KINDS:
        for n in (5, 20, 60):
            step(f"foreign states ({kind}, {n})")
            r = foreign_state_success(task_id, seeds, kind, n)
            checks.append(_check(f"foreign states: {n} {kind} clicks, then the expert", r["success"],
                                 r["success"] >= 0.95 and r["max_clicks"] <= MAX_CLICKS,
                                 f">= 0.95 within {MAX_CLICKS} clicks"))
    step("mistake removal")
    m = mistake_removal(task_id, cases=min(n_seeds, 50))
    checks.append(_check(f"mistakes: removed within {cls.correction_length} clicks",
                         m["removal_rate"], m["cases"] >= 10 and m["removal_rate"] >= 0.95,
                         ">= 0.95 of >= 10 states"))
    return {"task": task_id, "seeds": n_seeds, "checks": checks,
            "passed": all(c["passed"] for c in checks)}
