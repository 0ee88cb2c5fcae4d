"""Closed-loop evaluation: the policy works the GUIs itself.

Many sessions are stepped in lockstep with ONE batched ``ClickPolicy.act`` per step: the model
encodes each session's new frame once and keeps its caches (the last K frame tokens and clicks,
and each cell's recent history), so a step costs one frame encoding per session plus the small
temporal transformer. This module only drives sessions: render, click, stop rules, records.

Mistake recovery starts sessions from annotator states that hold an uncorrected mistake (the
annotator's own history up to the click that made it) and measures how often the policy removes it
within a few clicks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from annobc.tasks.episode import (NO_TARGET, EpisodeRecord, StepRecord, TargetGeometry, finish_record,
                                  annotator_rng, new_record, run_annotator)
from annobc.tasks.registry import get_annotator_class, get_task_class
from annobc.tasks.session import Session
from annobc.tasks.stats import episode_stats

# A policy has no phase latent; its clicks are recorded with the phase their category implies.
PHASE_OF_CATEGORY = {"navigate": "navigate", "place": "place", "view": "inspect", "select": "select",
                     "undo": "correct", "done": "finish", "invalid": "inspect"}


@dataclass
class Rollout:
    """One session driven by the policy, with its rolling history."""

    session: Session
    record: EpisodeRecord
    max_steps: int
    keep_frames: bool = False
    frames: list = field(default_factory=list)
    clicks: list = field(default_factory=list)  # every click (x, y), prefix included
    # Prefix frames still to observe, oldest first, each with the click before it ((-1, -1): none).
    pending: list = field(default_factory=list)
    row: int = -1  # the session's row in the model's caches
    prefix_len: int = 0
    stop_when_fixed: int | None = None  # recovery: stop once n_wrong drops below this
    stop_before: tuple[str, ...] = ()  # takeover: hand over instead of clicking these elements
    stopped: bool = False
    expert: object = None  # DAgger: an Annotator whose next_intent() labels every policy click
    intervene: tuple[str, ...] = ()  # label categories the expert clicks itself (e.g. "undo")

    @property
    def finished(self) -> bool:
        if self.stopped or self.session.done or len(self.record.steps) >= self.max_steps:
            return True
        return self.stop_when_fixed is not None and self.session.task.n_wrong() < self.stop_when_fixed


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% confidence interval of a proportion (Wilson score)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


@torch.no_grad()
def run_rollouts(model, rollouts: list[Rollout], temperature: float, device="cpu",
                 batch_size: int = 64, seed: int = 0, progress=None) -> list[Rollout]:
    """Step all rollouts to the end, ``batch_size`` sessions at a time, one batched
    :meth:`~annobc.models.ClickPolicy.act` per step (the model keeps each session's caches)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    state = model.start(batch_size, device)
    free = list(range(batch_size))[::-1]
    queue = list(rollouts)[::-1]
    active: list[Rollout] = []
    while queue or active:
        while queue and free:
            r = queue.pop()
            r.row = free.pop()
            state.clear(r.row)
            active.append(r)
        # Prefix frames (mistake recovery: the annotator's history) are only observed.
        while any(r.pending for r in active):
            feed = [r for r in active if r.pending]
            rows = torch.tensor([r.row for r in feed], device=device)
            frames, prev = zip(*(r.pending.pop(0) for r in feed))
            model.observe(state, rows, to_tensor(frames, device), torch.tensor(prev, device=device))
        frames = []
        for r in active:
            cur = r.session.render()
            if r.keep_frames:
                r.frames.append(cur)
            frames.append(cur)
        rows = torch.tensor([r.row for r in active], device=device)
        prev = torch.tensor([r.clicks[-1] if r.clicks else (-1, -1) for r in active], device=device)
        clicks = model.act(state, rows, to_tensor(frames, device), prev, temperature, gen).cpu().numpy()
        still = []
        for i, r in enumerate(active):
            x = int(np.clip(clicks[i, 0], 0, r.session.layout.width - 1))
            y = int(np.clip(clicks[i, 1], 0, r.session.layout.height - 1))
            if r.stop_before and r.session.layout.hit(x, y) in r.stop_before:
                r.stopped = True  # the click is not made: the expert takes over from here
            else:
                step_rollout(r, x, y)
            if r.finished:
                finish_record(r.record, r.session)
                if r.keep_frames:
                    r.frames.append(r.session.render())
                if progress is not None:
                    progress.update(1)
                free.append(r.row)
            else:
                still.append(r)
        active = still
    return rollouts


def to_tensor(frames, device) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames)).to(device)  # (m, H, W, 3) uint8


def step_rollout(r: Rollout, x: int, y: int) -> None:
    """Make the policy's click (x, y), or, with a DAgger expert, record its label beside it (and
    let the expert click itself where it intervenes)."""
    label = r.expert.next_intent() if r.expert is not None else None
    aim = r.session.hit(label.x, label.y) if label is not None else (None, None)
    target = TargetGeometry.of(r.session, label.target) if label is not None else NO_TARGET
    if aim[1] in r.intervene:
        # The expert makes this click itself (a demonstration, not a label), so that e.g. a wrong
        # marker is undone at once instead of haunting every later state.
        res = r.session.step(label.x, label.y)
        r.clicks.append((label.x, label.y))
        r.record.steps.append(StepRecord.from_step(label, res, target))
        return
    res = r.session.step(x, y)
    r.clicks.append((x, y))
    step = StepRecord(x, y, res.element, res.category, PHASE_OF_CATEGORY[res.category],
                      res.position, -1, -1, -1, None, res.mistake_present, res.effect.wrong,
                      res.removed_mistake, res.effect.annotated, learner=True)
    if label is not None:
        step.label_x, step.label_y = label.x, label.y
        step.label_element, step.label_category = aim
        step.target = label.target
        step.target_x, step.target_y = target.x, target.y
        step.target_offset = target.offset
    r.record.steps.append(step)


def new_rollout(task_id: str, seed: int, screen, theme: str | None, max_steps: int, name: str,
                keep_frames: bool = False, params: dict | None = None,
                ui_variant: str = "default") -> Rollout:
    s = Session(task_id, seed, params, screen, theme, ui_variant)
    return Rollout(s, new_record(s, f"policy:{name}"), max_steps, keep_frames)


def closed_loop(model, tasks: list[str], seeds: list[int], temperature: float, max_steps: int,
                screen, theme: str = "dark", device="cpu", gifs_per_task: int = 0, name: str = "policy",
                batch_size: int = 64, progress=None,
                params: dict[str, dict] | None = None,
                ui_variant: str | Sequence[str] = "default") -> dict[str, list[Rollout]]:
    """Closed-loop episodes; ``params`` (task -> parameters) should be the training data's;
    ``ui_variant``: the GUI variant they are shown in, or one per seed (all run in one batch)."""
    params = params or {}
    variants = [ui_variant] * len(seeds) if isinstance(ui_variant, str) else list(ui_variant)
    if len(variants) != len(seeds):
        raise ValueError(f"{len(variants)} GUI variants for {len(seeds)} seeds")
    rollouts = {t: [new_rollout(t, s, screen, theme, max_steps, name, i < gifs_per_task, params.get(t),
                                v)
                    for i, (s, v) in enumerate(zip(seeds, variants))] for t in tasks}
    run_rollouts(model, [r for rs in rollouts.values() for r in rs], temperature, device,
                 batch_size, progress=progress)
    return rollouts


def closed_loop_metrics(records: list[EpisodeRecord]) -> dict:
    s = episode_stats(records)
    n, wins = len(records), sum(r.success for r in records)
    lo, hi = wilson_interval(wins, n)
    invalid = s["action_mix"]["invalid"]
    # A success is "above chance" only when its interval clears what a lucky guess scores (0 for
    # placement tasks, 1/k for a k-way decision).
    chance = get_task_class(records[0].task_id).chance_level
    return {
        "episodes": n, "score": s["mean_score"], "success_rate": s["success_rate"],
        "success_ci95": [round(lo, 4), round(hi, 4)], "chance_level": chance,
        "above_chance": bool(lo > chance),
        "done_rate": s["done_rate"],
        # Of the successful episodes, those the policy ended itself (DONE) rather than at the cap.
        "done_when_successful": (sum(r.done for r in records if r.success) / wins) if wins else None,
        "mean_length": s["mean_length"], "action_validity": 1.0 - invalid,
        "action_mix": s["action_mix"], "mistake_rate": s["mistake_rate"],
        "correction_rate": s["correction_rate"],
    }


@torch.no_grad()
def mistake_recovery(model, task_id: str, seeds: list[int], screen, theme: str = "dark",
                     horizon: int = 8, temperature: float = 0.0, device="cpu",
                     batch_size: int = 64, params: dict | None = None,
                     ui_variant: str = "default") -> dict:
    """From annotator states right after an uncorrected mistake, how often does the policy remove it
    within ``horizon`` clicks? The annotator's own rate from the same states is given beside it."""
    k = model.cfg.window
    rollouts, annotator_fixed, expert_fixed = [], 0, 0
    for seed in seeds:
        rec = run_annotator(task_id, seed, params=params, screen_size=screen, theme=theme,
                            ui_variant=ui_variant)
        m = next((i for i, s in enumerate(rec.steps) if s.is_mistake), None)
        if m is None:
            continue
        after = rec.steps[m + 1:m + 1 + horizon]
        # the annotator fixed it if the wrong count went back within the horizon: replay to check
        s = Session(task_id, seed, rec.params, screen, theme, ui_variant)
        frames = []
        for x, y in rec.clicks[:m + 1]:
            frames.append(s.render())
            s.step(x, y)
        wrong = s.task.n_wrong()
        if wrong == 0:
            continue
        probe = Session(task_id, seed, rec.params, screen, theme, ui_variant)
        for x, y in rec.clicks[:m + 1]:
            probe.step(x, y)
        fixed = False
        for st in after:
            probe.step(st.x, st.y)
            if probe.task.n_wrong() < wrong:
                fixed = True
                break
            if probe.done:
                break
        annotator_fixed += fixed
        expert_fixed += expert_removes(task_id, rec, m + 1, wrong, horizon, screen, theme,
                                       ui_variant)
        r = Rollout(s, new_record(s, "policy:recovery"), max_steps=m + 1 + horizon)
        r.record.steps = list(rec.steps[:m + 1])
        r.clicks = list(rec.clicks[:m + 1])
        first = max(0, len(frames) - (k - 1))
        r.pending = [(frames[i], rec.clicks[i - 1] if i > 0 else (-1, -1))
                     for i in range(first, len(frames))] if k > 1 else []
        r.prefix_len = m + 1
        r.stop_when_fixed = wrong
        rollouts.append(r)
    run_rollouts(model, rollouts, temperature, device, batch_size)
    n = len(rollouts)
    fixed = sum(r.session.task.n_wrong() < r.stop_when_fixed for r in rollouts)
    undo_used = sum(any(s.category == "undo" for s in r.record.steps[r.prefix_len:]) for r in rollouts)
    return {"states": n, "horizon": horizon,
            "policy_removed_mistake": fixed / n if n else None,
            "policy_pressed_undo": undo_used / n if n else None,
            "annotator_removed_mistake": annotator_fixed / n if n else None,
            "expert_removed_mistake": expert_fixed / n if n else None}


def expert_removes(task_id: str, rec: EpisodeRecord, clicks: int, wrong: int, horizon: int,
                   screen, theme: str | None, ui_variant: str = "default") -> bool:
    """Whether the task's expert, taking over after the record's first ``clicks`` clicks, lowers
    the wrong count below ``wrong`` within ``horizon`` clicks."""
    s = Session(task_id, rec.seed, rec.params, screen, theme, ui_variant)
    for x, y in rec.clicks[:clicks]:
        s.step(x, y)
    persona = s.task_cls.personas[rec.persona] if rec.persona in s.task_cls.personas else (
        s.task_cls.personas["default"])
    expert = get_annotator_class(task_id).expert(s, persona,
                                                 annotator_rng(rec.seed, f"{rec.persona}:resume"))
    for _ in range(horizon):
        if s.done:
            break
        intent = expert.next_intent()
        s.step(intent.x, intent.y)
        if s.task.n_wrong() < wrong:
            return True
    return False
