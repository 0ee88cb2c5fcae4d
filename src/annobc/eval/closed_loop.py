"""Closed-loop evaluation: the policy works the GUIs itself.

Many sessions are stepped in lockstep with ONE batched forward per step. Each session's frame is
encoded once when it appears; the last K frame tokens and clicks of every session are kept, so a step
costs one frame encoding per session plus the small temporal transformer.

Mistake recovery starts sessions from annotator states that hold an uncorrected mistake (the
annotator's own history up to the click that made it) and measures how often the policy removes it
within a few clicks.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from annobc.tasks.episode import (NO_TARGET, EpisodeRecord, StepRecord, TargetGeometry, finish_record,
                                  annotator_rng, new_record, run_annotator)
from annobc.tasks.registry import get_annotator_class
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
    tokens: deque = field(default_factory=deque)  # last K frame tokens (d,)
    maps: deque = field(default_factory=deque)  # last spatial_history per-frame maps (C, h, w)
    raw: deque = field(default_factory=deque)  # input_peak: the last spatial_history-1 frames
    clicks: list = field(default_factory=list)  # every click (x, y), prefix included
    pending: list = field(default_factory=list)  # prefix frames still to encode (oldest first)
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
    """Step all rollouts to the end, ``batch_size`` sessions at a time, one forward per step."""
    cfg = model.cfg
    k = cfg.window
    n_maps = cfg.spatial_history
    gen = torch.Generator(device="cpu").manual_seed(seed)
    queue = list(rollouts)
    active: list[Rollout] = []
    while queue or active:
        while queue and len(active) < batch_size:
            active.append(queue.pop(0))
        frames, befores, owners = [], [], []
        for i, r in enumerate(active):
            cur = r.session.render()
            if r.keep_frames:
                r.frames.append(cur)
            for f in r.pending + [cur]:
                frames.append(f)
                owners.append(i)
                if cfg.input_peak:  # each frame's per-pixel max over the frames before it
                    befores.append(np.max(r.raw, 0) if r.raw else np.zeros_like(f))
                    r.raw.append(f)
                    while len(r.raw) > n_maps - 1:
                        r.raw.popleft()
            r.pending = []
        batch = torch.from_numpy(np.stack(frames)).to(device)
        before = torch.from_numpy(np.stack(befores)).to(device) if befores else None
        tokens, spatial = model.encode_frames(batch, before)  # (n, d), (n, C, h, w)
        if spatial is not None and model.history is not None:
            # Each new frame's cell history (and the token's summary of it) from that rollout's
            # last spatial_history maps, in one batched call.
            windows = torch.zeros(len(owners), n_maps, *spatial.shape[1:], device=device)
            have = torch.zeros(len(owners), n_maps, dtype=torch.bool, device=device)
            for j, i in enumerate(owners):
                maps = active[i].maps
                maps.append(spatial[j])
                while len(maps) > n_maps:
                    maps.popleft()
                windows[j, n_maps - len(maps):] = torch.stack(list(maps))
                have[j, n_maps - len(maps):] = True
            spatial, tokens = model.cell_history(windows, have, tokens[:, None], last=True)
            spatial, tokens = spatial[:, 0], tokens[:, 0]  # (n, C, h, w), (n, d)
        last_spatial = {}
        for j, i in enumerate(owners):
            active[i].tokens.append(tokens[j])
            while len(active[i].tokens) > k:
                active[i].tokens.popleft()
            last_spatial[i] = j
        b, d = len(active), tokens.shape[1]
        tok = torch.zeros(b, k, d, device=device)
        prev = torch.zeros(b, k, 2, dtype=torch.long, device=device)
        bos = torch.zeros(b, k, dtype=torch.bool, device=device)
        valid = torch.zeros(b, k, dtype=torch.bool, device=device)
        for i, r in enumerate(active):
            n = len(r.tokens)
            t = len(r.clicks)  # index of the step being decided
            tok[i, k - n:] = torch.stack(list(r.tokens))
            valid[i, k - n:] = True
            for j in range(n):
                step = t - n + 1 + j
                if step == 0:
                    bos[i, k - n + j] = True
                else:
                    prev[i, k - n + j] = torch.tensor(r.clicks[step - 1])
        h = model.temporal(tok, prev, bos, valid)[:, -1]  # (b, d)
        sp = spatial[[last_spatial[i] for i in range(b)]] if spatial is not None else None
        clicks = model.sample_click(h, sp, temperature, gen).cpu().numpy()
        still = []
        for i, r in enumerate(active):
            x = int(np.clip(clicks[i, 0], 0, r.session.layout.width - 1))
            y = int(np.clip(clicks[i, 1], 0, r.session.layout.height - 1))
            if r.stop_before and r.session.layout.hit(x, y) in r.stop_before:
                r.stopped = True  # the click is not made: the expert takes over from here
            else:
                label = r.expert.next_intent() if r.expert is not None else None
                aim = r.session.hit(label.x, label.y) if label is not None else (None, None)
                target = TargetGeometry.of(r.session, label.target) if label is not None else NO_TARGET
                if aim[1] in r.intervene:
                    # The expert makes this click itself (a demonstration, not a label), so that
                    # e.g. a wrong marker is undone at once instead of haunting every later state.
                    res = r.session.step(label.x, label.y)
                    r.clicks.append((label.x, label.y))
                    r.record.steps.append(StepRecord.from_step(label, res, target))
                else:
                    res = r.session.step(x, y)
                    r.clicks.append((x, y))
                    step = StepRecord(
                        x, y, res.element, res.category, PHASE_OF_CATEGORY[res.category],
                        res.position, -1, -1, -1, None, res.mistake_present, res.effect.wrong,
                        res.removed_mistake, res.effect.annotated, learner=True)
                    if label is not None:
                        step.label_x, step.label_y = label.x, label.y
                        step.label_element, step.label_category = aim
                        step.target = label.target
                        step.target_x, step.target_y = target.x, target.y
                        step.target_offset = target.offset
                    r.record.steps.append(step)
            if r.finished:
                finish_record(r.record, r.session)
                if r.keep_frames:
                    r.frames.append(r.session.render())
                if progress is not None:
                    progress.update(1)
            else:
                still.append(r)
        active = still
    return rollouts


def new_rollout(task_id: str, seed: int, screen, theme: str, max_steps: int, name: str,
                keep_frames: bool = False, params: dict | None = None) -> Rollout:
    s = Session(task_id, seed, params, screen, theme)
    return Rollout(s, new_record(s, f"policy:{name}"), max_steps, keep_frames)


def closed_loop(model, tasks: list[str], seeds: list[int], temperature: float, max_steps: int,
                screen, theme: str = "dark", device="cpu", gifs_per_task: int = 0, name: str = "policy",
                batch_size: int = 64, progress=None,
                params: dict[str, dict] | None = None) -> dict[str, list[Rollout]]:
    """Closed-loop episodes; ``params`` (task -> parameters) should be the training data's."""
    params = params or {}
    rollouts = {t: [new_rollout(t, s, screen, theme, max_steps, name, i < gifs_per_task, params.get(t))
                    for i, s in enumerate(seeds)] for t in tasks}
    run_rollouts(model, [r for rs in rollouts.values() for r in rs], temperature, device,
                 batch_size, progress=progress)
    return rollouts


def closed_loop_metrics(records: list[EpisodeRecord]) -> dict:
    s = episode_stats(records)
    n, wins = len(records), sum(r.success for r in records)
    lo, hi = wilson_interval(wins, n)
    invalid = s["action_mix"]["invalid"]
    return {
        "episodes": n, "score": s["mean_score"], "success_rate": s["success_rate"],
        "success_ci95": [round(lo, 4), round(hi, 4)], "done_rate": s["done_rate"],
        "mean_length": s["mean_length"], "action_validity": 1.0 - invalid,
        "action_mix": s["action_mix"], "mistake_rate": s["mistake_rate"],
        "correction_rate": s["correction_rate"],
    }


@torch.no_grad()
def mistake_recovery(model, task_id: str, seeds: list[int], screen, theme: str = "dark",
                     horizon: int = 8, temperature: float = 0.0, device="cpu",
                     batch_size: int = 64, params: dict | None = None) -> dict:
    """From annotator states right after an uncorrected mistake, how often does the policy remove it
    within ``horizon`` clicks? The annotator's own rate from the same states is given beside it."""
    k = model.cfg.window
    rollouts, annotator_fixed, expert_fixed = [], 0, 0
    for seed in seeds:
        rec = run_annotator(task_id, seed, params=params, screen_size=screen, theme=theme)
        m = next((i for i, s in enumerate(rec.steps) if s.is_mistake), None)
        if m is None:
            continue
        after = rec.steps[m + 1:m + 1 + horizon]
        # the annotator fixed it if the wrong count went back within the horizon: replay to check
        s = Session(task_id, seed, rec.params, screen, theme)
        frames = []
        for x, y in rec.clicks[:m + 1]:
            frames.append(s.render())
            s.step(x, y)
        wrong = s.task.n_wrong()
        if wrong == 0:
            continue
        probe = Session(task_id, seed, rec.params, screen, theme)
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
        expert_fixed += expert_removes(task_id, rec, m + 1, wrong, horizon, screen, theme)
        r = Rollout(s, new_record(s, "policy:recovery"), max_steps=m + 1 + horizon)
        r.record.steps = list(rec.steps[:m + 1])
        r.clicks = list(rec.clicks[:m + 1])
        r.pending = frames[-(k - 1):] if k > 1 else []
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
                   screen, theme: str) -> bool:
    """Whether the task's expert, taking over after the record's first ``clicks`` clicks, lowers
    the wrong count below ``wrong`` within ``horizon`` clicks."""
    s = Session(task_id, rec.seed, rec.params, screen, theme)
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
