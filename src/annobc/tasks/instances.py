"""Imported instances: real data that a task plays in place of its generated scene.

An instance is one ``.npz`` file of arrays on the task's data grid (image data, ground truth, a
0-d ``task`` string naming the task it is for) that ``annobc import`` writes. The tasks that take
one (neuron, cell lineage and animal limb tracking) have an ``instance`` parameter naming either
such a file, which every seed then plays, or an import folder::

    import.json                 the import card: its task, seed_stride, split_order, splits and
                                instances (see annobc.importers.common.write_card)
    instances/<name>.npz        the instances

In an import folder the scene seed picks the instance: seed ``s`` is in split
``split_order[(s // seed_stride) % len(split_order)]`` (the seed ranges ``annobc generate`` gives
its train / val / test splits) and plays that split's instance ``(s % seed_stride) % n`` of its
``n`` (a split without instances takes from all of the folder's). So a dataset generated with
``--param TASK.instance=FOLDER`` plays the folder's train instances in its train split, and so on.

This module reads instances only; the tasks may not import the importers, a layer above them.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

INSTANCE_INDEX = "import.json"  # the import card of an import folder, which lists its instances


def instance_file(spec: str, seed: int, task_id: str) -> Path:
    """The instance file that an ``instance`` parameter ``spec`` names for scene seed ``seed``:
    the file itself, or in an import folder the seed's instance (see the module docstring)."""
    path = Path(spec).expanduser()
    if not path.is_dir():
        if not path.is_file():
            raise FileNotFoundError(f"{task_id}: no instance file or import folder {spec}")
        return path
    try:
        card = json.loads((path / INSTANCE_INDEX).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is not an import folder: no {INSTANCE_INDEX}") from None
    if card.get("task") != task_id:
        raise ValueError(f"{path} holds {card.get('task')} instances, not {task_id} ones")
    stride, order = int(card["seed_stride"]), card["split_order"]
    names = card["splits"].get(order[(seed // stride) % len(order)]) or \
        [i["name"] for i in card["instances"]]
    return path / "instances" / f"{names[(seed % stride) % len(names)]}.npz"


def load_instance(spec: str, seed: int, task_id: str) -> dict:
    """The arrays of the instance ``spec`` names for ``seed`` (read-only, cached per file: a file
    rewritten in place is read again)."""
    path = instance_file(spec, seed, task_id).resolve()
    st = path.stat()
    data = _read_instance(str(path), st.st_mtime_ns, st.st_size)
    if str(data["task"]) != task_id:
        raise ValueError(f"{path} is a {data['task']} instance, not a {task_id} one")
    return data


@lru_cache(maxsize=48)  # 16 for each of the three tasks that take instances
def _read_instance(path: str, mtime_ns: int, size: int) -> dict:
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    for v in out.values():
        v.setflags(write=False)
    return out
