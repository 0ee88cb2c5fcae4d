"""The task registry: task id -> the class that implements it. A new task is one line here."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from annobc.tasks.base import Task

TASKS: dict[str, str] = {  # in the order of TASKS.md
    "colored_dot_tracking": "annobc.tasks.colored_dot_tracking:ColoredDotTracking",
    "neuron_tracking": "annobc.tasks.neuron_tracking:NeuronTracking",
    "cell_lineage_tracking": "annobc.tasks.cell_lineage_tracking:CellLineageTracking",
    "multichannel_image_alignment": "annobc.tasks.multichannel_image_alignment:MultichannelImageAlignment",
    "animal_limb_tracking": "annobc.tasks.animal_limb_tracking:AnimalLimbTracking",
    "animal_behavioral_tracking": "annobc.tasks.animal_behavioral_tracking:AnimalBehavioralTracking",
    "3d_exploration_classification": "annobc.tasks.exploration_classification_3d:ExplorationClassification3D",
    "road_network_construction": "annobc.tasks.road_network_construction:RoadNetworkConstruction",
    "spectral_plume_finding": "annobc.tasks.spectral_plume_finding:SpectralPlumeFinding",
}

_loaded: dict[str, type] = {}


def task_ids() -> list[str]:
    return list(TASKS)


def get_task_class(task_id: str) -> type["Task"]:
    cls = _loaded.get(task_id)
    if cls is not None:
        return cls
    try:
        path = TASKS[task_id]
    except KeyError:
        raise ValueError(f"unknown task {task_id!r}; known tasks: {', '.join(TASKS)}") from None
    module, name = path.split(":")
    cls = _loaded[task_id] = getattr(importlib.import_module(module), name)
    return cls
