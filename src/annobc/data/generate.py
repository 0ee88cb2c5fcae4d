"""Parallel, resumable generation of annotator datasets.

The work is cut into shards, each a fixed (task, split, seed range). A shard is written atomically
(steps file, then episodes file, each through a temp file and a rename), so a killed run leaves only
whole shards; re-running the same command skips them and writes the rest. No episode is duplicated
or lost because a shard's content is a pure function of the plan.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from annobc import __version__
from annobc.data.frames import save_frames
from annobc.data.schema import SCHEMA_VERSION, features
from annobc.data.store import (CARD, DatasetError, EpisodeStore, atomic_write_json, dataset_stats,
                               episode_id, shard_complete, write_shard)
from annobc.gui import DEFAULT_SCREEN, DEFAULT_VARIANT, RENDERER_VERSION, get_variant, resolve_variants
from annobc.tasks.base import params_from_dict, params_to_dict
from annobc.tasks.episode import run_annotator
from annobc.tasks.registry import get_task_class, task_ids

SPLITS = ("train", "val", "test")
# Seed ranges never overlap: split k of a dataset with base seed S uses seeds S + k * SPLIT_STRIDE + i.
SPLIT_STRIDE = 10_000_000
PLAN = "plan.json"


@dataclass(frozen=True)
class Plan:
    tasks: tuple[str, ...]
    episodes_per_task: int
    seed: int = 0
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    persona: str = "default"
    screen: tuple[int, int] = DEFAULT_SCREEN
    theme: str | None = None  # None: each GUI variant's own theme; a name overrides them all
    shard_size: int = 50
    max_steps: int = 1000
    params: dict = field(default_factory=dict)  # task id -> parameter overrides (else defaults)
    # GUI variant(s): a name, "a,b,...", or "all"; with several, episode i of each split is shown
    # in variant i mod k (recorded per episode, in the ui_variant column)
    ui_variant: str = DEFAULT_VARIANT

    def __post_init__(self):
        resolve_variants(self.ui_variant)  # an unknown variant fails here, naming the known ones

    def variants(self) -> tuple[str, ...]:
        return resolve_variants(self.ui_variant)

    def variant_of(self, seed: int) -> str:
        """The GUI variant of the episode with scene seed ``seed``."""
        names = self.variants()
        return names[((seed - self.seed) % SPLIT_STRIDE) % len(names)]

    def task_params(self, task: str) -> dict:
        """The full parameters of ``task`` in this dataset (defaults with the overrides applied)."""
        cls = get_task_class(task)
        return params_to_dict(params_from_dict(cls.Params, self.params.get(task)))

    def split_counts(self) -> dict[str, int]:
        n = self.episodes_per_task
        val = max(1, round(n * self.split_fractions[1])) if n >= 3 else 0
        test = max(1, round(n * self.split_fractions[2])) if n >= 3 else 0
        return {"train": n - val - test, "val": val, "test": test}

    def seed_ranges(self) -> dict[str, list[int]]:
        """[first, last] seed of each split (the same for every task)."""
        out = {}
        for k, (split, n) in enumerate(self.split_counts().items()):
            start = self.seed + k * SPLIT_STRIDE
            out[split] = [start, start + n - 1] if n else []
        return out

    def shards(self) -> list[dict]:
        out = []
        for task in self.tasks:
            for split, n in self.split_counts().items():
                start = self.seed_ranges()[split][0] if n else 0
                for j, first in enumerate(range(0, n, self.shard_size)):
                    count = min(self.shard_size, n - first)
                    out.append({"name": f"{task}-{split}-{j:05d}", "task": task, "split": split,
                                "seeds": [start + first, start + first + count]})
        return out

    def to_json(self) -> dict:
        d = asdict(self)
        d["tasks"], d["screen"] = list(self.tasks), list(self.screen)
        d["split_fractions"] = list(self.split_fractions)
        return d


def resolve_tasks(spec: str | Sequence[str]) -> tuple[str, ...]:
    names = list(task_ids()) if spec in ("all", ["all"]) else (
        [t.strip() for t in spec.split(",") if t.strip()] if isinstance(spec, str) else list(spec))
    for t in names:
        get_task_class(t)  # one-line error listing the known tasks
    if not names:
        raise ValueError("no tasks given")
    return tuple(names)


def _make_shard(args: tuple[str, dict, dict]) -> tuple[str, int]:
    root, plan_json, shard = args
    plan = Plan(**{**plan_json, "tasks": tuple(plan_json["tasks"]), "screen": tuple(plan_json["screen"]),
                   "split_fractions": tuple(plan_json["split_fractions"])})
    seeds = range(*shard["seeds"])
    params = plan.params.get(shard["task"]) or None
    # Imported instances (annobc import): the frames are materialised too (frames_stored), so the
    # dataset does not need the import folder; they also replay from it, bit for bit.
    stored = bool(params and params.get("instance"))
    records = []
    for s in seeds:
        frames: list | None = [] if stored else None
        records.append(run_annotator(shard["task"], s, plan.persona, params=params,
                                     screen_size=plan.screen, theme=plan.theme,
                                     max_steps=plan.max_steps, ui_variant=plan.variant_of(s),
                                     frames=frames))
        if stored:
            save_frames(root, episode_id(shard["task"], shard["split"], s), np.stack(frames))
    write_shard(Path(root), shard["name"], records, [shard["split"]] * len(records),
                frames_stored=[stored] * len(records))
    return shard["name"], len(records)


def code_version() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def generate(out: str | Path, plan: Plan, workers: int = 1, progress: bool = True) -> dict:
    """Generate (or finish generating) the dataset ``plan`` describes in ``out``; returns the card."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    plan = with_absolute_instances(plan)
    plan_path = root / PLAN
    if plan_path.exists():
        old = json.loads(plan_path.read_text())
        # Fields added to Plan after a dataset was planned take their defaults.
        defaults = Plan(tasks=(), episodes_per_task=0).to_json()
        old = {**{k: v for k, v in defaults.items() if k not in old}, **old}
        if old != plan.to_json():
            raise DatasetError(f"{root} holds a dataset planned with other arguments ({plan_path}); "
                               f"use a new folder or the same arguments to resume")
    else:
        atomic_write_json(plan_path, plan.to_json())
    for sub in ("steps", "episodes"):  # temp files of a killed writer
        for tmp in (root / sub).glob(".*.tmp*"):
            tmp.unlink(missing_ok=True)
    shards = plan.shards()
    todo = [s for s in shards if not shard_complete(root, s["name"])]
    total = sum(s["seeds"][1] - s["seeds"][0] for s in todo)
    done_eps = 0
    from tqdm import tqdm

    bar = tqdm(total=total, unit="ep", desc="generate", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    jobs = [(str(root), plan.to_json(), s) for s in todo]
    t0 = time.perf_counter()
    if workers > 1 and len(jobs) > 1:
        ctx = mp.get_context("fork" if sys.platform == "linux" else "spawn")
        with ctx.Pool(workers) as pool:
            for _, n in pool.imap_unordered(_make_shard, jobs):
                bar.update(n)
                done_eps += n
    else:
        for job in jobs:
            _, n = _make_shard(job)
            bar.update(n)
            done_eps += n
    bar.close()
    card = write_card(root, plan, [s["name"] for s in shards])
    card["generation"] = {"episodes_written_now": done_eps, "seconds": round(time.perf_counter() - t0, 2),
                          "workers": workers}
    return card


def with_absolute_instances(plan: Plan) -> Plan:
    """``plan`` with each task's ``instance`` parameter (an imported instance or import folder)
    as an absolute path, so that the dataset's episodes replay from any working directory."""
    params = {t: ({**p, "instance": str(Path(p["instance"]).expanduser().resolve())}
                  if p.get("instance") else p) for t, p in plan.params.items()}
    return plan if params == plan.params else replace(plan, params=params)


def write_card(root: Path, plan: Plan, shard_names: list[str]) -> dict:
    card = {
        "format": "annobc-dataset",
        "schema_version": SCHEMA_VERSION,
        "renderer_version": RENDERER_VERSION,
        "code_version": code_version(),
        "screen": list(plan.screen),
        "theme": plan.theme,
        "ui_variant": plan.ui_variant,
        "ui_variants": {v: get_variant(v).as_dict() for v in plan.variants()},
        "persona": plan.persona,
        "seed_ranges": plan.seed_ranges(),
        "tasks": {t: {"version": get_task_class(t).version, "params": plan.task_params(t)}
                  for t in plan.tasks},
        "shards": shard_names,
        "features": features(),
    }
    atomic_write_json(root / CARD, card)
    store = EpisodeStore(root)
    card["stats"] = dataset_stats(store)
    card["episodes"] = len(store)
    card["steps"] = int(sum(store.episodes["length"]))
    atomic_write_json(root / CARD, card)
    return card


def parse_task_params(items: Sequence[str] | None) -> dict[str, dict]:
    """['colored_dot_tracking.n_targets=[4, 8]', ...] -> {task: {key: value}} (YAML values)."""
    out: dict[str, dict] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        task, dot, name = key.partition(".")
        if not sep or not dot:
            raise ValueError(f"--param must look like TASK.NAME=VALUE, got {item!r}")
        cls = get_task_class(task)
        value = yaml.safe_load(raw)
        out.setdefault(task, {})[name] = value
        params_from_dict(cls.Params, out[task])  # unknown names fail here, naming the known ones
    return out
