"""annobc.tasks.instances: which instance of an import folder a scene seed plays, reading it, and
the tasks that take an ``instance`` parameter using it (one copy, in the tasks layer)."""

import json
import shutil
from importlib import import_module

import numpy as np
import pytest

from annobc.data.generate import SPLIT_STRIDE, SPLITS
from annobc.tasks import instances
from annobc.tasks.instances import INSTANCE_INDEX, instance_file, load_instance
from tests.importers.conftest import (R_NEIGHBOUR, R_TARGET, neuron_paths, neuron_volume,
                                      tifffile, write_swc)

TASK = "neuron_tracking"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """An import folder of six neuron_tracking instances (4 train, 1 val, 1 test)."""
    from annobc.importers import import_neuron

    tmp = tmp_path_factory.mktemp("instances")
    tifffile.imwrite(tmp / "stack.tif", neuron_volume())
    target, neighbour = neuron_paths()
    swcs = [write_swc(tmp / "target.swc", target, R_TARGET, branch_at=30),
            write_swc(tmp / "neighbour.swc", neighbour, R_NEIGHBOUR)]
    import_neuron(tmp / "stack.tif", swcs, tmp / "imp", max_slices=12)
    return tmp / "imp"


def card_of(folder) -> dict:
    return json.loads((folder / INSTANCE_INDEX).read_text())


def test_the_seed_picks_its_splits_instance(folder):
    card = card_of(folder)
    assert card["split_order"] == list(SPLITS) and card["seed_stride"] == SPLIT_STRIDE
    for k, split in enumerate(SPLITS):
        names = card["splits"][split]
        for s in range(7):
            for base in (k * SPLIT_STRIDE, (k + 3) * SPLIT_STRIDE):  # the split ranges repeat
                path = instance_file(str(folder), base + s, TASK)
                assert path == folder / "instances" / f"{names[s % len(names)]}.npz"
                assert path.is_file()
    # Every train instance is played by the first few train seeds.
    played = {instance_file(str(folder), s, TASK).stem for s in range(4)}
    assert played == set(card["splits"]["train"])


def test_a_split_without_instances_takes_from_all(folder, tmp_path):
    copy = tmp_path / "imp"
    shutil.copytree(folder, copy)
    card = card_of(copy)
    card["splits"]["val"] = []
    (copy / INSTANCE_INDEX).write_text(json.dumps(card))
    every = [i["name"] for i in card["instances"]]
    for s in range(8):
        assert instance_file(str(copy), SPLIT_STRIDE + s, TASK).stem == every[s % len(every)]


def test_an_instance_file_is_played_by_every_seed(folder):
    f = folder / "instances" / f"{card_of(folder)['splits']['test'][0]}.npz"
    for s in (0, 5, SPLIT_STRIDE + 1, 2 * SPLIT_STRIDE):
        assert instance_file(str(f), s, TASK) == f


def test_load_instance_reads_read_only_arrays_once(folder):
    path = instance_file(str(folder), 0, TASK)
    data = load_instance(str(folder), 0, TASK)
    with np.load(path) as z:
        assert set(data) == set(z.files)
        for k in z.files:
            assert np.array_equal(data[k], z[k])
    assert str(data["task"]) == TASK and data["images"].dtype == np.uint8
    assert not data["images"].flags.writeable
    assert load_instance(str(path), 7, TASK) is data  # the same file: the cached arrays


def test_a_rewritten_instance_is_read_again(folder, tmp_path):
    f = tmp_path / "one.npz"
    shutil.copy(instance_file(str(folder), 0, TASK), f)
    first = load_instance(str(f), 0, TASK)
    with np.load(f) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["images"] = arrays["images"][:11]  # one slice fewer: another size
    np.savez(f, **arrays)
    again = load_instance(str(f), 0, TASK)
    assert again is not first and len(again["images"]) == 11


def test_bad_specs_are_one_line_errors(folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="no instance file or import folder"):
        instance_file(str(tmp_path / "nope"), 0, TASK)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not an import folder"):
        instance_file(str(tmp_path / "empty"), 0, TASK)
    with pytest.raises(ValueError, match="holds neuron_tracking instances, not cell_lineage"):
        instance_file(str(folder), 0, "cell_lineage_tracking")
    f = instance_file(str(folder), 0, TASK)  # a file names no task: load_instance checks it
    with pytest.raises(ValueError, match="is a neuron_tracking instance, not a animal_limb"):
        load_instance(str(f), 0, "animal_limb_tracking")


@pytest.mark.parametrize("task", ["neuron_tracking", "cell_lineage_tracking",
                                  "animal_limb_tracking"])
def test_the_tasks_share_the_one_helper(task):
    from annobc.tasks import get_task_class

    mod = import_module(get_task_class(task).__module__)
    assert mod.load_instance is instances.load_instance
    assert mod.instance_file is instances.instance_file
    assert not hasattr(mod, "_read_instance") and not hasattr(mod, "INSTANCE_INDEX")


def test_a_task_plays_the_seeds_instance(folder):
    from annobc.tasks import Session

    for seed in (0, 1, SPLIT_STRIDE, 2 * SPLIT_STRIDE + 3):
        task = Session(TASK, seed, {"instance": str(folder)}).task
        images = load_instance(str(folder), seed, TASK)["images"]
        assert task.n_slices == len(images)
        assert np.array_equal(task.render_view(0)[:, :, 0], images[0])
