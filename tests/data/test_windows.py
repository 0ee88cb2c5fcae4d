"""The windowed PyTorch dataset: frames by replay equal the frames of the generating run."""

import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from annobc.data import EpisodeStore, Plan, append_episodes, generate
from annobc.data.windows import CATEGORY_INDEX, WindowDataset, WindowLoader
from annobc.tasks import run_annotator

TASK = "colored_dot_tracking"
K = 4


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("win") / "ds"
    generate(root, Plan(tasks=(TASK,), episodes_per_task=8, shard_size=4), progress=False)
    return EpisodeStore(root)


def all_windows(ds):
    return list(iter(ds))


def test_windows_equal_frames_captured_during_generation(store):
    ds = WindowDataset(store, "train", window=K, seed=1)
    windows = all_windows(ds)
    eids = store.episode_ids("train")
    assert len(windows) == sum(store.meta(e)["length"] for e in eids)  # one window per step
    captured = {}
    for e in eids:
        frames = []
        rec = run_annotator(TASK, store.meta(e)["seed"], frames=frames)
        captured[store.meta(e)["seed"]] = (np.stack(frames), rec)
    seed_of = {}
    for w in windows[:200]:
        t = int(w["step"][-1])
        # find the episode whose click at step t matches, via the frames
        matches = [s for s, (f, rec) in captured.items()
                   if t < len(rec) and np.array_equal(f[t], w["frames"][-1])
                   and tuple(w["xy"][-1]) == rec.clicks[t]]
        assert len(matches) >= 1
        frames, rec = captured[matches[0]]
        for j in range(K):
            step = t - K + 1 + j
            if step < 0:
                assert not w["valid"][j] and not w["frames"][j].any()
            else:
                assert w["valid"][j]
                assert np.array_equal(w["frames"][j], frames[step])
                assert tuple(w["xy"][j]) == rec.clicks[step]
                assert w["bos"][j] == (step == 0)
                assert w["category"][j] == CATEGORY_INDEX[rec.steps[step].category]
                assert w["is_mistake"][j] == rec.steps[step].is_mistake
                if step > 0:
                    assert tuple(w["prev_xy"][j]) == rec.clicks[step - 1]
        seed_of[matches[0]] = True
    assert len(seed_of) >= 2  # windows interleave episodes


def test_deterministic_for_a_seed_and_different_across_seeds(store):
    a = [int(w["xy"][-1][0]) * 1000 + int(w["step"][-1]) for w in WindowDataset(store, window=2, seed=3)]
    b = [int(w["xy"][-1][0]) * 1000 + int(w["step"][-1]) for w in WindowDataset(store, window=2, seed=3)]
    c = [int(w["xy"][-1][0]) * 1000 + int(w["step"][-1]) for w in WindowDataset(store, window=2, seed=4)]
    assert a == b and a != c and sorted(a) == sorted(c)


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_dataloader_workers_cover_every_window_once(store, workers):
    ds = WindowDataset(store, "train", window=K, seed=0)
    dl = DataLoader(ds, batch_size=16, num_workers=workers)
    steps = []
    for batch in dl:
        assert batch["frames"].shape[1:] == (K, 128, 160, 3) and batch["frames"].dtype == torch.uint8
        steps += batch["step"][:, -1].tolist()
    expected = sorted(s for e in store.episode_ids("train") for s in range(store.meta(e)["length"]))
    assert sorted(steps) == expected


@pytest.mark.parametrize("workers", [1, 2])
def test_window_loader_gives_the_dataloaders_batches_and_kept_batches_stay_valid(store, workers):
    """The shared-memory ring is an implementation detail: the same batches as a plain DataLoader
    with the same workers, every field, even when all batches are kept (slots are reused)."""
    ds = WindowDataset(store, "train", window=K, seed=0)
    ref = list(DataLoader(ds, batch_size=5, num_workers=workers))
    got = []
    for b in WindowLoader(ds, batch_size=5, workers=workers, prefetch=2):
        time.sleep(0.02)  # a slow consumer: the workers run ahead and reuse slots
        got.append(b)
    assert len(got) == len(ref) > 2 * workers * (2 + 2)  # more batches than the ring has slots
    for a, b in zip(ref, got):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


def test_distributed_sharding_partitions_episodes(store):
    full = WindowDataset(store, "train", window=1, seed=0)
    parts = [WindowDataset(store, "train", window=1, seed=0, rank=r, world_size=2) for r in range(2)]
    counts = [len(all_windows(p)) for p in parts]
    assert sum(counts) == len(all_windows(full)) and min(counts) > 0
    eps = [set(p.epoch_episodes()[r::2]) for r, p in enumerate(parts)]
    assert eps[0].isdisjoint(eps[1])


def test_task_weights_and_errors(store):
    with pytest.raises(ValueError, match="not in this split"):
        WindowDataset(store, task_weights={"neuron_tracking": 1.0})
    with pytest.raises(ValueError, match="no test episodes"):
        WindowDataset(store, "test", tasks=["other"])
    ds = WindowDataset(store, task_weights={TASK: 2.0}, episodes_per_epoch=3)
    assert len(ds.epoch_episodes()) == 3


def test_materialised_frames_are_served_without_replay(tmp_path):
    frames = []
    rec = run_annotator(TASK, 42, frames=frames)
    rec.renderer_version = "0-old"  # e.g. a session recorded under an older renderer
    root = tmp_path / "mat"
    append_episodes(root, [rec], ["train"], ids=["human-0"], frames=[np.stack(frames)])
    store = EpisodeStore(root)
    assert store.meta("human-0")["frames_stored"]
    ws = all_windows(WindowDataset(store, "train", window=K))
    assert len(ws) == len(rec)
    by_step = {int(w["step"][-1]): w for w in ws}
    for t in (0, 5, len(rec) - 1):
        assert np.array_equal(by_step[t]["frames"][-1], frames[t])


def test_target_xy_points_at_the_item_each_step_works_on(tmp_path):
    from annobc.data.windows import EpisodeWindows
    from annobc.tasks import Session

    rec = run_annotator("colored_dot_tracking", 3)
    frames = np.zeros((len(rec) + 1, 1, 1, 3), np.uint8)  # frames play no part here
    w = EpisodeWindows.from_record(rec, frames)
    task = Session("colored_dot_tracking", 3).task
    for i, s in enumerate(rec.steps):
        if s.target < 0:
            assert tuple(w.target_xy[i]) == (-1, -1)
        else:  # on the target dot: the canvas maps data pixels 1:1 at 160x128, offset by 2
            d = task.targets[s.target]
            assert abs(w.target_xy[i][0] - 2 - d.x) <= 1 and abs(w.target_xy[i][1] - 2 - d.y) <= 1
    navigating = [i for i, s in enumerate(rec.steps) if s.category == "navigate" and s.target >= 0]
    assert navigating  # dense: navigation steps point at the dot they head for, not only placements
    # The offset class: the slice before each click, from the target dot's brightest (+3, clipped).
    z = np.rint([s.position * (task.n_slices - 1) for s in rec.steps]).astype(int)
    for i, s in enumerate(rec.steps):
        if s.target >= 0:
            assert w.target_offset[i] == np.clip(z[i] - task.targets[s.target].peak, -3, 3) + 3
        else:
            assert w.target_offset[i] == -100
    placed = [i for i, s in enumerate(rec.steps) if s.category == "place" and not s.is_mistake]
    assert placed and all(w.target_offset[i] == 3 for i in placed)  # on the brightest slice


