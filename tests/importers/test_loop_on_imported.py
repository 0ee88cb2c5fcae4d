"""The loop on real data: annobc generate over an import folder (annotator episodes on the real
ground truth, frames materialised AND replayable from the import), windows from the dataset, the
seed ranges of the splits playing the import's train / val / test instances."""

import json

import numpy as np
import pytest

from annobc.data import EpisodeStore, Plan, generate, load_frames
from annobc.data.generate import SPLIT_STRIDE
from annobc.importers import import_neuron, import_pose, import_tracks
from annobc.tasks import replay

from .conftest import write_ctc, write_dlc


def neuron(tmp_path, files):
    return "neuron_tracking", import_neuron(files["volume"], [files["target"], files["neighbour"]],
                                            tmp_path / "imp", max_slices=12)


def tracks(tmp_path, files):
    return "cell_lineage_tracking", import_tracks(write_ctc(tmp_path / "ctc"), tmp_path / "imp")


def pose(tmp_path, files):
    return "animal_limb_tracking", import_pose(write_dlc(tmp_path / "dlc"), tmp_path / "imp",
                                               frames_per_instance=3)


@pytest.mark.parametrize("make", [neuron, tracks, pose], ids=["neuron", "tracks", "pose"])
def test_generate_over_an_import(make, tmp_path, neuron_files, monkeypatch):
    task, card = make(tmp_path, neuron_files)
    assert all(card["splits"].values()), card["splits"]  # three instances or more: all splits
    monkeypatch.chdir(tmp_path)  # a relative instance path is stored absolute
    plan = Plan(tasks=(task,), episodes_per_task=5, params={task: {"instance": "imp"}})
    ds = tmp_path / "ds"
    dcard = generate(ds, plan, progress=False)
    assert dcard["tasks"][task]["params"]["instance"] == str((tmp_path / "imp").resolve())
    store = EpisodeStore(ds)
    assert len(store) == 5 and all(store.episodes["frames_stored"])
    assert np.mean(store.episodes["success"]) >= 0.6
    index = json.loads((tmp_path / "imp" / "import.json").read_text())
    for eid in store.episode_ids():
        m = store.meta(eid)
        # The seed's split is the episode's split, and it plays an instance of that split.
        assert _instance_name(task, m) in index["splits"][m["split"]]
        # The materialised frames are the frames replay renders from the import, bit for bit.
        stored = load_frames(ds, eid)
        replayed = np.stack(list(replay(store.record(eid))))
        assert stored.shape == replayed.shape and np.array_equal(stored, replayed)
    # The seeds annobc eval plays (from the test seed range on) are the held-out instances.
    test0 = dcard["seed_ranges"]["test"][0]
    assert test0 // SPLIT_STRIDE == 2
    played = {_instance_name(task, {"params": json.dumps({"instance": str(tmp_path / "imp")}),
                                    "seed": test0 + i}) for i in range(20)}
    assert played == set(index["splits"]["test"])


def _instance_name(task, meta) -> str:
    """The instance an episode played: the task module's instance_file for its seed."""
    from importlib import import_module

    from annobc.tasks import get_task_class

    mod = import_module(get_task_class(task).__module__)
    path = mod.instance_file(json.loads(meta["params"])["instance"], meta["seed"], task)
    return path.with_suffix("").name


def test_windows_from_an_imported_dataset(tmp_path, neuron_files):
    pytest.importorskip("torch")
    from annobc.data.windows import EpisodeWindows, WindowDataset

    task, _ = tracks(tmp_path, neuron_files)
    ds = tmp_path / "ds"
    generate(ds, Plan(tasks=(task,), episodes_per_task=3,
                      params={task: {"instance": str(tmp_path / "imp")}}), progress=False)
    store = EpisodeStore(ds)
    eid = store.episode_ids("train")[0]
    w = EpisodeWindows.from_store(store, eid)
    win = w.window(5, 4)
    assert win["frames"].shape == (4, 128, 160, 3) and win["valid"].all()
    assert np.array_equal(win["frames"], np.asarray(load_frames(ds, eid)[2:6]))
    sample = next(iter(WindowDataset(store, "train", window=4)))
    assert sample["frames"].shape == (4, 128, 160, 3)
