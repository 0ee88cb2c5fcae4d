"""Takeover episodes (DAgger-style data): the policy rolls in, the annotator rolls out.

Annotator episodes only show the states an annotator reaches. A policy that errs once (marks a
distractor, stops a slice short, checks in MIP too early) is then in states no demonstration shows,
and errs again. A takeover episode lets the policy click for a random number of steps, then the
task's annotator finishes it from there (:meth:`~annobc.tasks.base.Annotator.resume`): it undoes the
policy's wrong annotations and does what is left. The policy's clicks are stored with ``learner``
set: training reads them as history but never imitates them (Ross et al. 2011, DAgger, with the
annotator as the expert of the states the policy visits).

    annobc takeover runs/demo/train --data runs/demo/data --tasks colored_dot_tracking --episodes 200
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from annobc.data import EpisodeStore, append_episodes
from annobc.eval.closed_loop import new_rollout, run_rollouts
from annobc.tasks import get_task_class, task_ids
from annobc.tasks.base import Annotator
from annobc.tasks.episode import EpisodeRecord, annotator_rng, finish_record, play_intents


def can_take_over(task_id: str) -> bool:
    """Whether the task's annotator can finish an episode someone else began (has resume())."""
    return get_task_class(task_id).Annotator.resume is not Annotator.resume


def takeover_episodes(model, task_id: str, seeds: list[int], rollin_max: int, screen,
                      theme: str = "dark", params: dict | None = None, temperature: float = 0.4,
                      persona: str = "default", max_steps: int = 300, device="cpu",
                      batch_size: int = 64, seed: int = 0, name: str = "policy",
                      progress=None) -> list[EpisodeRecord]:
    """The policy rolls in, the annotator rolls out.

    Each episode lets the policy click for a random 1..``rollin_max`` steps (handing over early
    rather than pressing DONE), then the task's annotator finishes it from that state with
    :meth:`~annobc.tasks.base.Annotator.resume`: it removes the policy's wrong annotations and does
    what is left. The policy's clicks are marked ``learner`` (history, not targets), so training on
    these episodes teaches what to do in the states the policy itself reaches (Ross et al. 2011),
    which annotator episodes never show.
    """
    if not can_take_over(task_id):
        can = [t for t in task_ids() if can_take_over(t)]
        raise ValueError(f"the {task_id} annotator cannot take over a running episode; tasks whose "
                         f"annotator can: {', '.join(can)}")
    rng = np.random.default_rng([seed, 7])
    rollouts = []
    for s in seeds:
        r = new_rollout(task_id, s, screen, theme, int(rng.integers(1, rollin_max + 1)), name,
                        params=params)
        r.stop_before = ("DONE",)
        rollouts.append(r)
    run_rollouts(model, rollouts, temperature, device, batch_size,
                 seed=seed, progress=progress)
    records = []
    for r in rollouts:
        s = r.session  # not done: the policy hands over instead of pressing DONE
        cls = s.task_cls
        expert = cls.Annotator(s, cls.personas[persona], annotator_rng(s.task.seed, f"{persona}:resume"))
        play_intents(s, r.record, expert.resume(), max_steps)
        finish_record(r.record, s)
        r.record.persona = f"policy:{name}+{persona}"
        records.append(r.record)
    return records


def describe(r: dict) -> str:
    """One line on what :func:`add_takeover_episodes` added."""
    return (f"{r['task']}: {r['episodes']} takeover episodes -> shard {r['shard']} "
            f"({r['rollin_steps']} policy clicks as context, {r['expert_steps']} annotator clicks "
            f"to imitate; annotator success {r['expert_success']:.0%})")


def add_takeover_episodes(model, data: str | Path, task_id: str, episodes: int,
                          temperature: float = 0.4, seed: int = 0, rollin_max: int | None = None,
                          name: str = "policy", device="cpu", progress=None) -> dict:
    """Play ``episodes`` takeover episodes on the dataset's train scenes of ``task_id`` (the
    annotator's persona and the task's params as in the dataset) and add them as one train shard.
    ``rollin_max`` defaults to 1.5x the task's mean annotator episode length, so that roll-ins
    also reach the states past where the annotator would have stopped (a policy that runs on)."""
    store = EpisodeStore(data)
    if task_id not in store.tasks:
        raise ValueError(f"task {task_id!r} is not in the dataset {data} (it has {store.tasks})")
    card = store.card
    lo, hi = card["seed_ranges"]["train"]
    rng = np.random.default_rng([seed, 11])
    seeds = rng.choice(np.arange(lo, hi + 1), size=episodes, replace=episodes > hi - lo + 1).tolist()
    rollin_max = rollin_max or int(round(1.5 * card["stats"][task_id]["mean_length"]))
    records = takeover_episodes(model, task_id, seeds, rollin_max, tuple(card["screen"]),
                                card["theme"], card["tasks"][task_id]["params"], temperature,
                                card["persona"], device=device, seed=seed, name=name,
                                progress=progress)
    tag = len([s for s in card["shards"] if s.startswith("added-")])
    ids = [f"{task_id}-train-{r.seed}-takeover{tag}-{i}" for i, r in enumerate(records)]
    shard = append_episodes(data, records, ["train"] * len(records), ids)
    learner = [sum(s.learner for s in r.steps) for r in records]
    return {"task": task_id, "shard": shard, "episodes": len(records),
            "rollin_steps": int(sum(learner)),
            "expert_steps": int(sum(len(r) for r in records) - sum(learner)),
            "expert_success": float(np.mean([r.success for r in records])) if records else None}
