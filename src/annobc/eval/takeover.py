"""Takeover episodes (DAgger-style data): the policy rolls in, the annotator rolls out.

Annotator episodes only show the states an annotator reaches. A policy that errs once (marks a
distractor, stops a slice short, checks in MIP too early) is then in states no demonstration shows,
and errs again. A takeover episode lets the policy click for a random number of steps, then the
task's annotator finishes it from there (:meth:`~annobc.tasks.annotator.Annotator.resume`): it undoes the
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
from annobc.tasks import get_annotator_class, get_task_class, task_ids
from annobc.tasks.episode import EpisodeRecord, annotator_rng, finish_record, play_intents


def dagger_episodes(model, task_id: str, seeds: list[int], max_steps: int, screen,
                    theme: str = "dark", params: dict | None = None, temperature: float = 0.4,
                    persona: str = "default", device="cpu", batch_size: int = 64, seed: int = 0,
                    name: str = "policy", progress=None) -> list[EpisodeRecord]:
    """The policy plays, the annotator labels (DAgger, Ross et al. 2011).

    The policy clicks every step, until it presses DONE or ``max_steps``; before each of its clicks
    the task's annotator says what it would click in that state
    (:meth:`~annobc.tasks.annotator.Annotator.next_intent`), stored as the step's label. Training
    imitates the labels with the policy's own clicks as history: every state the policy reaches
    is taught, not only the one where a takeover hands over.
    """
    rollouts = []
    for s in seeds:
        r = new_rollout(task_id, s, screen, theme, max_steps, name, params=params)
        r.expert = get_annotator_class(task_id).expert(
            r.session, r.session.task_cls.personas[persona], annotator_rng(s, f"{persona}:label"))
        r.intervene = ("undo",)
        rollouts.append(r)
    run_rollouts(model, rollouts, temperature, device, batch_size, seed=seed, progress=progress)
    for r in rollouts:
        r.record.persona = f"policy:{name}+{persona}"
    return [r.record for r in rollouts]


def takeover_episodes(model, task_id: str, seeds: list[int], rollin_max: int, screen,
                      theme: str = "dark", params: dict | None = None, temperature: float = 0.4,
                      persona: str = "default", max_steps: int = 300, device="cpu",
                      batch_size: int = 64, seed: int = 0, name: str = "policy",
                      progress=None) -> list[EpisodeRecord]:
    """The policy rolls in, the annotator rolls out.

    Each episode lets the policy click for a random 1..``rollin_max`` steps (handing over early
    rather than pressing DONE), then the task's annotator finishes it from that state with
    :meth:`~annobc.tasks.annotator.Annotator.resume`: it removes the policy's wrong annotations and does
    what is left. The policy's clicks are marked ``learner`` (history, not targets), so training on
    these episodes teaches what to do in the states the policy itself reaches (Ross et al. 2011),
    which annotator episodes never show.
    """
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
        expert = get_annotator_class(task_id).expert(
            s, s.task_cls.personas[persona], annotator_rng(s.task.seed, f"{persona}:resume"))
        play_intents(s, r.record, expert.resume(), max_steps)
        finish_record(r.record, s)
        r.record.persona = f"policy:{name}+{persona}"
        records.append(r.record)
    return records


MODES = ("takeover", "dagger")


def describe(r: dict) -> str:
    """One line on what :func:`add_takeover_episodes` added."""
    if r["mode"] == "dagger":
        return (f"{r['task']}: {r['episodes']} DAgger episodes -> shard {r['shard']} "
                f"({r['labelled_steps']} policy clicks, each labelled with the annotator's; policy "
                f"success {r['policy_success']:.0%})")
    return (f"{r['task']}: {r['episodes']} takeover episodes -> shard {r['shard']} "
            f"({r['rollin_steps']} policy clicks as context, {r['expert_steps']} annotator clicks "
            f"to imitate; annotator success {r['expert_success']:.0%})")


def add_takeover_episodes(model, data: str | Path, task_id: str, episodes: int,
                          temperature: float = 0.4, seed: int = 0, rollin_max: int | None = None,
                          name: str = "policy", device="cpu", progress=None,
                          mode: str = "takeover") -> dict:
    """Play ``episodes`` takeover (or, ``mode="dagger"``, labelled) episodes on the dataset's train
    scenes of ``task_id`` (the annotator's persona and the task's params as in the dataset) and add
    them as one train shard. ``rollin_max`` (the policy's most clicks) defaults to 1.5x the task's
    mean annotator episode length, so that roll-ins also reach the states past where the annotator
    would have stopped (a policy that runs on)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    store = EpisodeStore(data)
    if task_id not in store.tasks:
        raise ValueError(f"task {task_id!r} is not in the dataset {data} (it has {store.tasks})")
    card = store.card
    lo, hi = card["seed_ranges"]["train"]
    rng = np.random.default_rng([seed, 11])
    seeds = rng.choice(np.arange(lo, hi + 1), size=episodes, replace=episodes > hi - lo + 1).tolist()
    rollin_max = rollin_max or int(round(1.5 * card["stats"][task_id]["mean_length"]))
    play = dagger_episodes if mode == "dagger" else takeover_episodes
    records = play(model, task_id, seeds, rollin_max, tuple(card["screen"]), card["theme"],
                   card["tasks"][task_id]["params"], temperature, card["persona"], device=device,
                   seed=seed, name=name, progress=progress)
    tag = len([s for s in card["shards"] if s.startswith("added-")])
    ids = [f"{task_id}-train-{r.seed}-{mode}{tag}-{i}" for i, r in enumerate(records)]
    shard = append_episodes(data, records, ["train"] * len(records), ids)
    learner = [sum(s.learner for s in r.steps) for r in records]
    out = {"task": task_id, "mode": mode, "shard": shard, "episodes": len(records)}
    if mode == "dagger":
        return out | {"labelled_steps": int(sum(learner)),
                      "policy_success": float(np.mean([r.success for r in records])) if records else 0.0}
    return out | {"rollin_steps": int(sum(learner)),
            "expert_steps": int(sum(len(r) for r in records) - sum(learner)),
            "expert_success": float(np.mean([r.success for r in records])) if records else None}
