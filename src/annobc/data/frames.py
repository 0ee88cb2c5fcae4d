"""Materialised frames, for episodes that cannot be replayed (a person's session recorded under an
older renderer, real image data): one memory-mapped ``.npy`` array (n_clicks + 1, H, W, 3) uint8
per episode under ``frames/``, read lazily so a window touches only the frames it needs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from annobc.data.store import (CARD, EpisodeStore, atomic_write_json, dataset_stats, episode_id,
                               write_shard)
from annobc.data.schema import SCHEMA_VERSION, features
from annobc.gui import RENDERER_VERSION
from annobc.tasks.episode import EpisodeRecord


def save_frames(root: str | Path, eid: str, frames: np.ndarray) -> Path:
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (n, H, W, 3) uint8, got shape {frames.shape}")
    path = Path(root) / "frames" / f"{eid}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.npy")
    np.save(tmp, frames)
    os.replace(tmp, path)
    return path


def load_frames(root: str | Path, eid: str) -> np.ndarray:
    path = Path(root) / "frames" / f"{eid}.npy"
    try:
        return np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise FileNotFoundError(f"materialised frames missing: {path}") from None


def append_episodes(root: str | Path, records: Sequence[EpisodeRecord], splits: Sequence[str],
                    ids: Sequence[str] | None = None,
                    frames: Sequence[np.ndarray | None] | None = None) -> str:
    """Add episodes to a dataset folder (created if new) as one new shard; returns its name.

    Episodes given ``frames`` (the n+1 screens of the episode) are stored materialised and served
    from ``frames/`` instead of by replay.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    card_path = root / CARD
    if card_path.exists():
    
        card = json.loads(card_path.read_text())
    else:
        card = {"format": "annobc-dataset", "schema_version": SCHEMA_VERSION,
                "renderer_version": RENDERER_VERSION, "shards": [], "features": features(),
                "seed_ranges": {}}
    ids = list(ids or [episode_id(r.task_id, s, r.seed) for r, s in zip(records, splits)])
    frames = list(frames or [None] * len(records))
    for eid, r, f in zip(ids, records, frames):
        if f is not None:
            if len(f) != len(r) + 1:
                raise ValueError(f"episode {eid}: {len(f)} frames for {len(r)} clicks (need clicks + 1)")
            save_frames(root, eid, f)
    name = f"added-{len(card['shards']):05d}"
    write_shard(root, name, records, splits, ids, [f is not None for f in frames])
    card["shards"] = card["shards"] + [name]
    atomic_write_json(card_path, card)
    store = EpisodeStore(root, allow_other_renderer=True)
    card["episodes"], card["steps"] = len(store), int(sum(store.episodes["length"]))
    card["stats"] = dataset_stats(store)
    atomic_write_json(card_path, card)
    return name
