"""The human-study table: behaviour of datasets (people, virtual annotators, models) side by side.

Per task and per dataset (or per persona with ``by_persona``): action mix by click category,
navigation-to-placement ratio, correction rate (undo / (place + undo), as `annobc stats`), clicks
per episode, completion (episodes ended with DONE), success and score, and, where clicks carry
timestamps (people), the median reaction time by click category: the time from the previous click
(or from the first frame, for the first click) to this one, in ms.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from annobc.data import EpisodeStore
from annobc.tasks.base import CATEGORIES
from annobc.tasks.registry import get_task_class

NA = "n/a"


def _label_paths(paths: Sequence[str | Path]) -> list[str]:
    names = [Path(p).resolve().name or str(p) for p in paths]
    return [str(p) if names.count(n) > 1 else n for p, n in zip(paths, names)]


def summarise(store: EpisodeStore, eids: Sequence[str]) -> dict:
    """The table's figures for one group of episodes of one task."""
    counts: Counter = Counter()
    rts: dict[str, list[float]] = defaultdict(list)
    lengths, done, success, score = [], [], [], []
    timed = 0
    for eid in eids:
        m, st = store.meta(eid), store.steps(eid)
        lengths.append(int(m["length"]))
        done.append(bool(m["done"]))
        success.append(bool(m["success"]))
        score.append(float(m["score"]))
        cats = st["category"]
        counts.update(str(c) for c in cats)
        ts = np.array([np.nan if v is None else float(v) for v in st["timestamp_ms"]], np.float64)
        prev = np.concatenate([[0.0], ts[:-1]])
        dt = ts - prev
        ok = np.isfinite(dt)
        timed += int(np.isfinite(ts).sum())
        for c, d, good in zip(cats, dt, ok):
            if good:
                rts[str(c)].append(float(d))
    total = sum(counts.values())
    nav, place, undo = counts["navigate"], counts["place"], counts["undo"]
    out = {
        "episodes": len(eids),
        "clicks": total,
        "clicks_per_episode": float(np.mean(lengths)) if lengths else 0.0,
        "median_clicks_per_episode": float(np.median(lengths)) if lengths else 0.0,
        "completion": float(np.mean(done)) if done else 0.0,
        "success_rate": float(np.mean(success)) if success else 0.0,
        "mean_score": float(np.mean(score)) if score else 0.0,
        "action_mix": {c: counts[c] / total if total else 0.0 for c in CATEGORIES},
        "nav_to_place": nav / place if place else None,
        "correction_rate": undo / (place + undo) if place + undo else 0.0,
        "timestamped_clicks": timed,
        "median_rt_ms": {c: float(np.median(v)) for c, v in rts.items() if v},
    }
    all_rt = [d for v in rts.values() for d in v]
    out["median_rt_ms_all"] = float(np.median(all_rt)) if all_rt else None
    return out


def compare(paths: Sequence[str | Path], split: str | None = None, tasks: Sequence[str] | None = None,
            by_persona: bool = False) -> dict:
    """Figures per task and group. Groups are datasets, or (dataset, persona) with ``by_persona``."""
    if not paths:
        raise ValueError("give at least one dataset folder")
    labels = _label_paths(paths)
    groups: list[dict] = []
    for path, label in zip(paths, labels):
        store = EpisodeStore(path)
        eids = store.episode_ids(split)
        if not eids:
            raise ValueError(f"dataset {path} has no episodes" + (f" in split {split}" if split else ""))
        personas = sorted({store.meta(e)["persona"] for e in eids})
        keys = personas if by_persona else [None]
        for p in keys:
            mine = [e for e in eids if p is None or store.meta(e)["persona"] == p]
            groups.append({"label": f"{label}/{p}" if by_persona else label, "path": str(path),
                           "store": store, "eids": mine,
                           "personas": [p] if p else personas})
    all_tasks = sorted({store_task for g in groups for store_task in
                        {g["store"].meta(e)["task_id"] for e in g["eids"]}})
    if tasks:
        unknown = sorted(set(tasks) - set(all_tasks))
        if unknown:
            raise ValueError(f"task(s) {unknown} are in none of the datasets; they hold: "
                             f"{', '.join(all_tasks)}")
        all_tasks = [t for t in all_tasks if t in tasks]
    out: dict = {"groups": [{"label": g["label"], "path": g["path"], "personas": g["personas"]}
                            for g in groups], "split": split, "tasks": {}, "reference": {}}
    for t in all_tasks:
        per = {}
        for g in groups:
            eids = [e for e in g["eids"] if g["store"].meta(e)["task_id"] == t]
            if eids:
                per[g["label"]] = summarise(g["store"], eids)
        out["tasks"][t] = per
        out["reference"][t] = {k: list(v) for k, v in get_task_class(t).reference_ranges.items()}
    return out


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return NA
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}f}"


def format_table(result: dict) -> str:
    """Markdown tables, one per task; the last column is the task's published human range, if any."""
    lines = []
    for t, per in result["tasks"].items():
        ref = result["reference"].get(t, {})
        labels = list(per)
        head = ["metric"] + labels + (["reference (human study)"] if ref else [])
        rows: list[list[str]] = []

        def row(name: str, values: list[str], key: str | None = None):
            r = [name] + values
            if ref:
                lo_hi = ref.get(key) if key else None
                r.append(f"{lo_hi[0]:g} - {lo_hi[1]:g}" if lo_hi else "")
            rows.append(r)

        s = [per[l] for l in labels]
        row("personas", [", ".join(g["personas"]) for g in result["groups"] if g["label"] in per])
        row("episodes", [str(x["episodes"]) for x in s])
        row("clicks / episode (mean)", [_fmt(x["clicks_per_episode"], 1) for x in s], "mean_length")
        row("clicks / episode (median)", [_fmt(x["median_clicks_per_episode"], 1) for x in s])
        row("completion (ended with DONE)", [_fmt(x["completion"]) for x in s], "done_rate")
        row("success rate", [_fmt(x["success_rate"]) for x in s], "success_rate")
        row("mean score", [_fmt(x["mean_score"]) for x in s], "mean_score")
        used = [c for c in CATEGORIES if any(x["action_mix"][c] for x in s)
                or f"action_mix.{c}" in ref]
        for c in used:
            row(f"action mix: {c}", [_fmt(x["action_mix"][c]) for x in s], f"action_mix.{c}")
        row("navigation : placement", [_fmt(x["nav_to_place"], 2) for x in s], "nav_to_place")
        row("correction rate", [_fmt(x["correction_rate"]) for x in s], "correction_rate")
        row("timestamped clicks", [str(x["timestamped_clicks"]) for x in s])
        if any(x["timestamped_clicks"] for x in s):
            row("median reaction time, all (ms)", [_fmt(x["median_rt_ms_all"], 0) for x in s])
            for c in CATEGORIES:
                if any(c in x["median_rt_ms"] for x in s):
                    row(f"median reaction time: {c} (ms)",
                        [_fmt(x["median_rt_ms"].get(c), 0) for x in s])
        lines.append(f"### {t}" + (f" (split {result['split']})" if result.get("split") else ""))
        lines.append("")
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        lines.extend("| " + " | ".join(r) + " |" for r in rows)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
