"""Writing and reading the Parquet store: shards of episodes, the card, version and integrity checks."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from annobc.data.schema import EPISODE_SCHEMA, SCHEMA_VERSION, STEP_SCHEMA
from annobc.gui import RENDERER_VERSION
from annobc.tasks.episode import STEP_FIELDS, EpisodeRecord, StepRecord
from annobc.tasks.registry import get_task_class, task_ids
from annobc.tasks.stats import episode_stats

CARD = "dataset.json"


class DatasetError(ValueError):
    """A dataset that cannot be used as it is: the message says why in one line."""


def episode_id(task_id: str, split: str, seed: int) -> str:
    return f"{task_id}-{split}-{seed}"


# -- writing ---------------------------------------------------------------------------------------
def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2) + "\n").encode())


def _write_table(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)  # atomic: a reader sees the whole file or none


def records_to_tables(records: Sequence[EpisodeRecord], splits: Sequence[str],
                      ids: Sequence[str] | None = None,
                      frames_stored: Sequence[bool] | None = None) -> tuple[pa.Table, pa.Table]:
    ids = ids or [episode_id(r.task_id, s, r.seed) for r, s in zip(records, splits)]
    frames_stored = frames_stored or [False] * len(records)
    ep = {
        "episode_id": ids, "task_id": [r.task_id for r in records],
        "task_version": [r.task_version for r in records],
        "params": [json.dumps(r.params, sort_keys=True) for r in records],
        "seed": [r.seed for r in records], "split": list(splits),
        "persona": [r.persona for r in records],
        "renderer_version": [r.renderer_version for r in records],
        "screen_w": [r.screen[0] for r in records], "screen_h": [r.screen[1] for r in records],
        "theme": [r.theme for r in records], "ui_variant": [r.ui_variant for r in records],
        "length": [len(r) for r in records],
        "score": [r.score for r in records], "success": [r.success for r in records],
        "done": [r.done for r in records], "frames_stored": list(frames_stored),
    }
    steps: dict[str, list] = {"episode_id": [], "step": []}
    for f in STEP_FIELDS:
        steps[f] = []
    for eid, r in zip(ids, records):
        steps["episode_id"].extend([eid] * len(r))
        steps["step"].extend(range(len(r)))
        for s in r.steps:
            for f in STEP_FIELDS:
                steps[f].append(getattr(s, f))
    return (pa.Table.from_pydict(ep, schema=EPISODE_SCHEMA),
            pa.Table.from_pydict(steps, schema=STEP_SCHEMA))


def write_shard(root: Path, name: str, records: Sequence[EpisodeRecord], splits: Sequence[str],
                ids: Sequence[str] | None = None, frames_stored: Sequence[bool] | None = None) -> None:
    """Write one shard. Steps first, episodes last: the episodes file marks the shard complete."""
    ep, st = records_to_tables(records, splits, ids, frames_stored)
    _write_table(st, Path(root) / "steps" / f"{name}.parquet")
    _write_table(ep, Path(root) / "episodes" / f"{name}.parquet")


def shard_complete(root: Path, name: str) -> bool:
    """True if the shard's two files exist and read back (a killed writer leaves neither)."""
    root = Path(root)
    try:
        n_ep = pq.read_metadata(root / "episodes" / f"{name}.parquet").num_rows
        pq.read_metadata(root / "steps" / f"{name}.parquet")
    except (OSError, pa.ArrowInvalid):
        return False
    return n_ep > 0


# -- reading ---------------------------------------------------------------------------------------
def _read(path: Path, schema: pa.Schema) -> pa.Table:
    try:
        table = pq.read_table(path)
    except FileNotFoundError:
        raise DatasetError(f"missing shard file {path}") from None
    except (OSError, pa.ArrowInvalid) as e:
        raise DatasetError(f"shard file {path} is truncated or corrupt ({e})") from None
    missing = set(schema.names) - set(table.column_names)
    if missing:
        raise DatasetError(f"shard file {path} lacks columns {sorted(missing)}")
    return table.select(schema.names)


class EpisodeStore:
    """A dataset folder, loaded: episode metadata and all steps in memory (tens of bytes a step).

    Raises :class:`DatasetError` with a one-line message for a dataset written under another schema
    or renderer version, a missing or truncated shard, or an unknown task id.
    """

    def __init__(self, root: str | Path, allow_other_renderer: bool = False):
        self.root = Path(root)
        card_path = self.root / CARD
        if not card_path.exists():
            raise DatasetError(f"{self.root} is not a dataset: no {CARD} (run `annobc generate`)")
        self.card = json.loads(card_path.read_text())
        if self.card.get("schema_version") != SCHEMA_VERSION:
            raise DatasetError(f"dataset {self.root} uses schema version "
                               f"{self.card.get('schema_version')}; this annobc reads version "
                               f"{SCHEMA_VERSION}: regenerate it")
        shards = self.card["shards"]
        eps = [_read(self.root / "episodes" / f"{s}.parquet", EPISODE_SCHEMA) for s in shards]
        steps = [_read(self.root / "steps" / f"{s}.parquet", STEP_SCHEMA) for s in shards]
        self._tasks: list[str] | None = None
        self.episodes = pa.concat_tables(eps).to_pydict() if eps else {c: [] for c in EPISODE_SCHEMA.names}
        st = pa.concat_tables(steps) if steps else STEP_SCHEMA.empty_table()
        known = set(task_ids())
        for t in sorted(set(self.episodes["task_id"])):
            if t not in known:
                raise DatasetError(f"dataset {self.root} has unknown task {t!r}; known tasks: "
                                   f"{', '.join(task_ids())}")
        replayed = [not f for f in self.episodes["frames_stored"]]
        stale = {v for v, r in zip(self.episodes["renderer_version"], replayed) if r} - {RENDERER_VERSION}
        if stale and not allow_other_renderer:
            raise DatasetError(f"dataset {self.root} was rendered with renderer version "
                               f"{','.join(sorted(stale))}; this annobc renders version "
                               f"{RENDERER_VERSION}, so its frames cannot be replayed: regenerate it")
        for t, v, r in set(zip(self.episodes["task_id"], self.episodes["task_version"], replayed)):
            if not r:
                continue
            if get_task_class(t).version != v and not allow_other_renderer:
                raise DatasetError(f"dataset {self.root} holds {t}-v{v}; this annobc has "
                                   f"{t}-v{get_task_class(t).version}: regenerate it")
        self.index = {eid: i for i, eid in enumerate(self.episodes["episode_id"])}
        if len(self.index) != len(self.episodes["episode_id"]):
            raise DatasetError(f"dataset {self.root} holds duplicate episode ids")
        # Steps as numpy columns, with each episode's row range.
        self._steps = {c: st.column(c).to_numpy(zero_copy_only=False) for c in STEP_SCHEMA.names}
        # A nullable integer column reads as float with NaN for null: back to ints and None.
        self._steps["target_offset"] = np.array(
            [None if v is None else int(v) for v in st.column("target_offset").to_pylist()], object)
        ids = self._steps["episode_id"]
        order = np.argsort(np.array([self.index[e] for e in ids], dtype=np.int64) * (1 << 20)
                           + self._steps["step"], kind="stable")
        self._steps = {c: v[order] for c, v in self._steps.items()}
        lengths = np.asarray(self.episodes["length"], dtype=np.int64)
        self._offsets = np.concatenate([[0], np.cumsum(lengths)])
        if self._offsets[-1] != len(order):
            raise DatasetError(f"dataset {self.root}: steps do not match the episodes' lengths "
                               f"({len(order)} rows for {self._offsets[-1]} clicks)")

    def __len__(self) -> int:
        return len(self.index)

    @property
    def tasks(self) -> list[str]:
        """The dataset's task ids, sorted: a window's ``task`` index points into this list (a
        task's identity is its id, never its place in the registry)."""
        if self._tasks is None:
            self._tasks = sorted(set(self.episodes["task_id"]))
        return self._tasks

    def episode_ids(self, split: str | None = None, tasks: Iterable[str] | None = None,
                    variants: Iterable[str] | None = None) -> list[str]:
        """The episodes of ``split``, of ``tasks`` and shown in GUI ``variants`` (None: any)."""
        tasks = set(tasks) if tasks is not None else None
        variants = set(variants) if variants is not None else None
        return [e for e, s, t, v in zip(self.episodes["episode_id"], self.episodes["split"],
                                        self.episodes["task_id"], self.episodes["ui_variant"])
                if (split is None or s == split) and (tasks is None or t in tasks)
                and (variants is None or v in variants)]

    def variants(self, split: str | None = None, tasks: Iterable[str] | None = None) -> list[str]:
        """The GUI variants the episodes of ``split`` and ``tasks`` were shown in, sorted."""
        ids = set(self.episode_ids(split, tasks))
        return sorted({v for e, v in zip(self.episodes["episode_id"], self.episodes["ui_variant"])
                       if e in ids})

    def meta(self, eid: str) -> dict:
        i = self.index[eid]
        return {c: v[i] for c, v in self.episodes.items()}

    def steps(self, eid: str) -> dict[str, np.ndarray]:
        i = self.index[eid]
        a, b = self._offsets[i], self._offsets[i + 1]
        return {c: v[a:b] for c, v in self._steps.items()}

    def record(self, eid: str) -> EpisodeRecord:
        """The episode as an :class:`EpisodeRecord`, ready for :func:`annobc.tasks.replay`."""
        m, st = self.meta(eid), self.steps(eid)
        steps = [StepRecord(**{f: _py(st[f][k]) for f in STEP_FIELDS}) for k in range(m["length"])]
        return EpisodeRecord(
            task_id=m["task_id"], task_version=m["task_version"], params=json.loads(m["params"]),
            seed=m["seed"], persona=m["persona"], renderer_version=m["renderer_version"],
            screen=(m["screen_w"], m["screen_h"]), theme=m["theme"], steps=steps,
            score=float(m["score"]), success=bool(m["success"]), done=bool(m["done"]),
            ui_variant=m["ui_variant"])

    def frames_path(self, eid: str) -> Path:
        return self.root / "frames" / f"{eid}.npy"


def dataset_stats(store: EpisodeStore) -> dict:
    """Per-task stats of the demonstrations in the store (all splits), as `annobc stats` computes
    them: episodes a learned policy took part in (persona 'policy:...', e.g. takeover episodes)
    are left out."""
    out = {}
    for t in store.tasks:
        recs = [store.record(e) for e in store.episode_ids(tasks=[t])
                if not store.meta(e)["persona"].startswith("policy:")]
        s = episode_stats(recs)
        s.pop("reference", None)
        out[t] = s
    return out


def _py(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and np.isnan(v):
        return None
    return v
