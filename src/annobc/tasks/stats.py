"""Behaviour statistics of a set of episodes: action mix, correction and mistake rates, success."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

import numpy as np

from annobc.tasks.base import CATEGORIES
from annobc.tasks.episode import EpisodeRecord
from annobc.tasks.registry import get_task_class


def episode_stats(records: Iterable[EpisodeRecord]) -> dict:
    """Pooled statistics over episodes of one task.

    ``action_mix`` is the fraction of all clicks in each category; ``correction_rate`` is
    undo / (place + undo); ``mistake_rate`` is wrong annotations / annotations made.
    """
    records = list(records)
    if not records:
        raise ValueError("no episodes to summarise")
    tasks = {r.task_id for r in records}
    if len(tasks) != 1:
        raise ValueError(f"episode_stats takes episodes of one task, got {sorted(tasks)}")
    counts: Counter = Counter()
    annotations = mistakes = corrections = 0
    lengths = np.array([len(r) for r in records])
    for r in records:
        for s in r.steps:
            counts[s.category] += 1
            annotations += s.annotated
            mistakes += s.is_mistake
            corrections += s.is_correction
    total = sum(counts.values())
    place_undo = counts["place"] + counts["undo"]
    out = {
        "task": records[0].task_id,
        "episodes": len(records),
        "success_rate": float(np.mean([r.success for r in records])),
        "mean_score": float(np.mean([r.score for r in records])),
        "done_rate": float(np.mean([r.done for r in records])),
        "mean_length": float(lengths.mean()),
        "length_range": [int(lengths.min()), int(lengths.max())],
        "action_mix": {c: counts[c] / total if total else 0.0 for c in CATEGORIES},
        "correction_rate": counts["undo"] / place_undo if place_undo else 0.0,
        "mistake_rate": mistakes / annotations if annotations else 0.0,
        "mistakes_per_episode": mistakes / len(records),
        "placements_per_episode": counts["place"] / len(records),
    }
    out["reference"] = reference_check(out)
    return out


def lookup(stats: dict, dotted: str) -> float:
    value = stats
    for part in dotted.split("."):
        value = value[part]
    return float(value)


def reference_check(stats: dict) -> dict:
    """Each of the task's reference ranges with the measured value and whether it falls inside."""
    ranges = get_task_class(stats["task"]).reference_ranges
    out = {}
    for name, (lo, hi) in ranges.items():
        v = lookup(stats, name)
        out[name] = {"value": v, "low": lo, "high": hi, "inside": bool(lo <= v <= hi)}
    return out
