"""The PyTorch dataset: windows of K consecutive steps, frames rendered on the fly by replay.

Each DataLoader worker takes its share of the epoch's episodes, replays each episode ONCE (one
render per step) and cuts it into the windows ending at each of its steps, so no window costs a
replay from the episode's start. Windows from several open episodes are interleaved at random so a
batch mixes episodes and tasks. Episodes with materialised frames are read from the frame store
instead of replayed.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import multiprocessing as mp

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from annobc.data.frames import load_frames
from annobc.data.store import EpisodeStore
from annobc.tasks.base import CATEGORIES, PHASES
from annobc.tasks.episode import STEP_FIELDS, EpisodeRecord, replay

CATEGORY_INDEX = {c: i for i, c in enumerate(CATEGORIES)}
PHASE_INDEX = {p: i for i, p in enumerate(PHASES)}


OFFSET_MAX = 3  # target offsets are clipped to -3..3 slices (steps) from the item's place


def target_columns(st: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The step columns' target geometry as the model reads it: (n, 2) the target item's screen
    pixel, -1 where none, and (n,) the view's offset from it along the data axis as a class
    0..2*OFFSET_MAX (offset + OFFSET_MAX, clipped), -100 (the loss's ignore index) where none."""
    xy = np.stack([st["target_x"], st["target_y"]], 1).astype(np.int64)
    off = np.asarray(st["target_offset"], dtype=object)
    known = np.array([o is not None and o == o for o in off], bool)  # None or NaN: no offset
    cls = np.full(len(off), -100, np.int64)
    if known.any():
        cls[known] = np.clip(off[known].astype(np.int64), -OFFSET_MAX, OFFSET_MAX) + OFFSET_MAX
    return xy, cls


def imitated(st: dict[str, np.ndarray]) -> np.ndarray:
    """(n,) bool: the steps whose target is a demonstration: an annotator's click, or an expert's
    label of a learner's click. A learner's unlabelled clicks (a takeover's roll-in) are history."""
    return ~np.asarray(st["learner"], bool) | (np.asarray(st["label_x"]) >= 0)


class EpisodeWindows:
    """One episode's frames and per-step arrays, from which windows are cut."""

    def __init__(self, frames: np.ndarray, st: dict[str, np.ndarray], task: int = 0):
        """``frames``: (n + 1, H, W, 3), the frame before every click and the last; ``st``: the
        episode's step columns (as ``EpisodeStore.steps`` gives them); ``task``: the episode's
        task as an index into the dataset's task list (:attr:`EpisodeStore.tasks`, sorted ids)."""
        self.frames = frames
        self.n = len(st["x"])
        self.task = int(task)
        clicked = np.stack([st["x"], st["y"]], 1).astype(np.int64)  # (n, 2) the clicks made
        # A DAgger label (an expert's click for a learner's state) is the target instead of the
        # click made; the click made stays the next step's previous click.
        labelled = np.asarray(st["label_x"]) >= 0
        label = np.stack([st["label_x"], st["label_y"]], 1).astype(np.int64)
        self.xy = np.where(labelled[:, None], label, clicked)
        self.prev_xy = np.concatenate([np.zeros((1, 2), np.int64), clicked[:-1]])  # (n, 2), BOS at 0
        category = np.where(labelled, st["label_category"], st["category"])
        self.category = np.array([CATEGORY_INDEX[c] for c in category], np.int64)
        self.phase = np.array([PHASE_INDEX[p] for p in st["phase"]], np.int64)
        self.position = st["position"].astype(np.float32)
        self.target = st["target"].astype(np.int64)
        self.mistake_present = st["mistake_present"].astype(bool)
        self.is_mistake = st["is_mistake"].astype(bool)
        self.is_correction = st["is_correction"].astype(bool)
        # The click hits another element than the click before (e.g. turning back after stepping
        # on): the rare steps a policy cannot get right by repeating its last action.
        element = np.array([e if e is not None else "" for e in st["element"]], dtype=object)
        aimed = np.where(labelled, [e if e is not None else "" for e in st["label_element"]], element)
        self.changed = np.concatenate([[True], aimed[1:] != element[:-1]]).astype(bool)
        self.imitate = imitated(st)
        self.target_xy, self.target_offset = target_columns(st)

    @classmethod
    def from_store(cls, store: EpisodeStore, eid: str) -> "EpisodeWindows":
        meta = store.meta(eid)
        if meta["frames_stored"]:
            frames = load_frames(store.root, eid)
        else:
            frames = np.stack(list(replay(store.record(eid))))  # (n + 1, H, W, 3)
        return cls(frames, store.steps(eid), store.tasks.index(meta["task_id"]))

    @classmethod
    def from_record(cls, record: EpisodeRecord, frames: np.ndarray, task: int = 0) -> "EpisodeWindows":
        """An episode not in a dataset (e.g. an annotator run), with its frames."""
        st = {f: np.array([getattr(s, f) for s in record.steps], dtype=object if f == "target_offset"
                          else None) for f in STEP_FIELDS}
        return cls(frames, st, task)

    def window(self, t: int, k: int) -> dict[str, np.ndarray]:
        """The k steps ending at step t, left-padded (valid=False) before the episode's start."""
        lo = t - k + 1
        idx = np.arange(lo, t + 1)
        valid = idx >= 0
        src = np.where(valid, idx, 0)
        frames = np.asarray(self.frames[src[0]:src[-1] + 1] if valid.all() else self.frames[src])
        if not valid.all():
            frames = frames * valid[:, None, None, None].astype(np.uint8)
        out = {
            "frames": np.ascontiguousarray(frames),  # (k, H, W, 3) uint8
            "valid": valid,
            "bos": idx == 0,
            "step": idx,
            "task": np.int64(self.task),
        }
        for name in ("xy", "prev_xy", "category", "phase", "position", "target", "mistake_present",
                     "is_mistake", "is_correction", "changed", "imitate", "target_xy",
                     "target_offset"):
            v = getattr(self, name)[src]
            out[name] = np.where(valid.reshape((-1,) + (1,) * (v.ndim - 1)), v, np.zeros_like(v))
        return out


class WindowDataset(IterableDataset):
    """Windows of ``window`` consecutive steps from one split of a dataset.

    Args:
        store: an :class:`EpisodeStore` or a dataset folder.
        split: "train", "val" or "test".
        window: K, the number of steps per sample.
        tasks: restrict to these task ids (default: all in the dataset).
        variants: restrict to episodes shown in these GUI variants (default: any).
        task_weights: task id -> sampling weight (default: equal per task). An epoch draws
            ``episodes_per_epoch`` episodes (default: all of the split), picking a task by weight,
            then the next episode of that task in a per-epoch shuffled order.
        seed: the stream is deterministic for (seed, epoch, num_workers, rank, world_size).
        interleave: how many episodes a worker keeps open and samples windows from.
        rank, world_size: DistributedSampler-style sharding of episodes across processes
            (default: from torch.distributed when it is initialised).

    Each sample is a dict: frames (K, H, W, 3) uint8, xy and prev_xy (K, 2) click pixels (prev_xy
    is zero where bos), category, phase, target (K,) int64, position (K,) float32,
    mistake_present, is_mistake, is_correction, changed (the click hits another element than the
    one before),
    imitate (a demonstrated click, not a learner's), target_xy (K, 2) (screen point of the item
    being worked on, -1 where none), target_offset (K,) (the view's offset class from
    it along the data axis, -100 where none), bos, valid (K,) bool, step (K,),
    task () (an index into the dataset's sorted task ids, :attr:`EpisodeStore.tasks`) and
    stream () (which rank/worker stream produced it: the key of ``set_epoch``'s ``skip``).
    """

    def __init__(self, store: EpisodeStore | str, split: str = "train", window: int = 8,
                 tasks: Sequence[str] | None = None, task_weights: dict[str, float] | None = None,
                 seed: int = 0, episodes_per_epoch: int | None = None, interleave: int = 8,
                 rank: int | None = None, world_size: int | None = None,
                 variants: Sequence[str] | None = None):
        self.store = store if isinstance(store, EpisodeStore) else EpisodeStore(store)
        self.split, self.window, self.seed = split, int(window), int(seed)
        self.tasks = list(tasks) if tasks is not None else self.store.tasks
        self.by_task = {t: self.store.episode_ids(split, [t], variants) for t in self.tasks}
        self.by_task = {t: e for t, e in self.by_task.items() if e}
        if not self.by_task:
            raise ValueError(f"no {split} episodes for tasks {self.tasks} in {self.store.root}")
        weights = task_weights or {}
        unknown = set(weights) - set(self.by_task)
        if unknown:
            raise ValueError(f"task_weights name tasks not in this split: {sorted(unknown)}")
        self.weights = np.array([float(weights.get(t, 1.0)) for t in self.by_task])
        if (self.weights < 0).any() or self.weights.sum() <= 0:
            raise ValueError("task weights must be >= 0 and not all zero")
        self.episodes_per_epoch = episodes_per_epoch or sum(len(e) for e in self.by_task.values())
        self.interleave = int(interleave)
        if rank is None or world_size is None:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
            else:
                rank, world_size = 0, 1
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0
        self.skip: dict[int, int] = {}

    def set_epoch(self, epoch: int, skip: dict[int, int] | None = None) -> None:
        """Start epoch ``epoch``; ``skip`` maps a stream (sample["stream"]) to how many of its
        windows were already consumed, for an exact resume."""
        self.epoch = int(epoch)
        self.skip = {int(k): int(v) for k, v in (skip or {}).items()}

    def epoch_episodes(self) -> list[str]:
        """The epoch's episode sequence (before sharding across ranks and workers)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        names = list(self.by_task)
        queues = {t: [] for t in names}
        p = self.weights / self.weights.sum()
        out = []
        for t_i in rng.choice(len(names), size=self.episodes_per_epoch, p=p):
            t = names[t_i]
            if not queues[t]:
                queues[t] = list(rng.permutation(self.by_task[t]))
            out.append(queues[t].pop())
        return out

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        shard = self.rank * nw + wid
        mine = self.epoch_episodes()[shard::self.world_size * nw]
        rng = np.random.default_rng([self.seed, self.epoch, shard, 1])
        skip = self.skip.get(shard, 0)
        pending = iter(mine)
        # Open episodes as [eid, windows-or-None, remaining steps]; frames are rendered on the
        # first window actually yielded, so skipping (resume) costs no rendering.
        open_eps: list[list] = []
        while True:
            while len(open_eps) < self.interleave:
                eid = next(pending, None)
                if eid is None:
                    break
                # Windows end on demonstrated clicks only (not on a takeover's roll-in).
                ends = np.flatnonzero(imitated(self.store.steps(eid)))
                if len(ends):
                    open_eps.append([eid, None, list(rng.permutation(ends))])
            if not open_eps:
                return
            i = int(rng.integers(len(open_eps)))
            entry = open_eps[i]
            t = entry[2].pop()
            if skip > 0:
                skip -= 1
            else:
                if entry[1] is None:
                    entry[1] = EpisodeWindows.from_store(self.store, entry[0])
                sample = entry[1].window(t, self.window)
                sample["stream"] = np.int64(shard)
                yield sample
            if not entry[2]:
                open_eps.pop(i)

    def approx_windows_per_epoch(self) -> int:
        """Windows per epoch across all ranks (an estimate when episodes are sampled by weight)."""
        lengths = {e: int(self.store.meta(e)["length"]) for es in self.by_task.values() for e in es}
        mean = np.mean(list(lengths.values()))
        return int(round(self.episodes_per_epoch * mean))


class _RingCollate:
    """A DataLoader worker's collate: frames into the worker's next slot of a shared ring, the
    small per-step arrays stacked as numpy (pickled through the worker's pipe).

    Why: the default collate turns every field into its own tensor, and a worker hands each tensor
    over in a new shared-memory segment (19 segments a batch here, the 7.5 MB frame block's pages
    faulted in afresh on both sides); that, not rendering, capped one worker at a fifth of the
    in-process rate (benchmarks/results/loader_throughput.json)."""

    def __init__(self, ring: torch.Tensor, free: list):
        self.ring = ring  # (workers, slots, B, K, H, W, 3) uint8 in shared memory
        self.free = free  # per worker, a semaphore counting its slots the main process has copied out
        self.count = 0  # batches this worker has collated (each worker process has its own copy)

    def __call__(self, samples: list[dict]) -> dict:
        info = get_worker_info()
        slot = self.count % self.ring.shape[1]
        self.count += 1
        # Wait for the slot to be copied out: a worker can run further ahead than its prefetch
        # (once another worker's shard is exhausted, every request goes to the ones left).
        self.free[info.id].acquire()
        dst = self.ring[info.id, slot].numpy()  # (B, K, H, W, 3)
        for i, s in enumerate(samples):
            if s["frames"].shape != dst.shape[1:]:
                raise ValueError(f"a window's frames are {s['frames'].shape}, the loader's ring "
                                 f"{dst.shape[1:]}: one dataset, one screen size")
            dst[i] = s["frames"]
        out = {k: np.stack([s[k] for s in samples]) for k in samples[0] if k != "frames"}
        out["frame_slot"] = np.array([info.id, slot, len(samples)])
        return out


class WindowLoader:
    """Batches of a :class:`WindowDataset` as dicts of tensors, like ``DataLoader(ds,
    batch_size)``, with ``workers`` processes rendering. With workers, frames travel through a
    ring of shared-memory batch slots allocated once (``prefetch + 2`` per worker; a worker waits
    for its next slot to be copied out before it writes there), and are copied out of their slot
    before a batch is returned, so a batch stays valid however long it is kept."""

    def __init__(self, ds: WindowDataset, batch_size: int, workers: int = 0, prefetch: int = 4):
        self.ds, self.batch_size, self.workers, self.prefetch = ds, int(batch_size), int(workers), int(prefetch)

    def __iter__(self) -> Iterator[dict]:
        if self.workers == 0:
            yield from DataLoader(self.ds, batch_size=self.batch_size)
            return
        screen_w, screen_h = self.ds.store.card["screen"]
        ring = torch.zeros((self.workers, self.prefetch + 2, self.batch_size) + (self.ds.window, screen_h, screen_w, 3),
                           dtype=torch.uint8).share_memory_()
        free = [mp.get_context().Semaphore(ring.shape[1]) for _ in range(self.workers)]
        for b in DataLoader(self.ds, batch_size=self.batch_size, num_workers=self.workers,
                            prefetch_factor=self.prefetch, collate_fn=_RingCollate(ring, free)):
            worker, slot, n = b.pop("frame_slot").tolist()
            batch = {k: torch.from_numpy(v) for k, v in b.items()}
            batch["frames"] = ring[worker, slot, :n].clone()  # (n, K, H, W, 3)
            free[worker].release()  # a worker's batches arrive in its order: its oldest slot
            yield batch
