"""The task registry: task id -> the task class, and each task's annotator.

Three ways in, all equal once registered:

- the nine built-in tasks (:data:`BUILTIN`, in the order of docs/tasks.md);
- a package of its own that declares an entry point in the group ``annobc.tasks``
  (``name = task id``, ``value = "module:TaskClass"``), read when :mod:`annobc` is imported, so
  every process (CLI, DataLoader workers under ``spawn``) sees it;
- :func:`register` at run time.

Classes are imported on first use. A task's annotator pairs itself with its task in its class
statement (``class MyAnnotator(Annotator, task=MyTask)``), so importing the task's module is enough.
A task's identity anywhere (datasets, windows, models) is its id, never its place in this registry.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from annobc.tasks.annotator import Annotator
    from annobc.tasks.base import Task

ENTRY_POINT_GROUP = "annobc.tasks"

BUILTIN: dict[str, str] = {
    "colored_dot_tracking": "annobc.tasks.builtin.colored_dot_tracking:ColoredDotTracking",
    "neuron_tracking": "annobc.tasks.builtin.neuron_tracking:NeuronTracking",
    "cell_lineage_tracking": "annobc.tasks.builtin.cell_lineage_tracking:CellLineageTracking",
    "multichannel_image_alignment": "annobc.tasks.builtin.multichannel_image_alignment:MultichannelImageAlignment",
    "animal_limb_tracking": "annobc.tasks.builtin.animal_limb_tracking:AnimalLimbTracking",
    "animal_behavioral_tracking": "annobc.tasks.builtin.animal_behavioral_tracking:AnimalBehavioralTracking",
    "3d_exploration_classification": "annobc.tasks.builtin.exploration_classification_3d:ExplorationClassification3D",
    "road_network_construction": "annobc.tasks.builtin.road_network_construction:RoadNetworkConstruction",
    "spectral_plume_finding": "annobc.tasks.builtin.spectral_plume_finding:SpectralPlumeFinding",
}

_paths: dict[str, str] = dict(BUILTIN)  # task id -> "module:Class", not yet imported
_origin: dict[str, str] = {t: "annobc" for t in BUILTIN}  # task id -> who registered it
_loaded: dict[str, type] = {}
_annotators: dict[type, type] = {}
_listeners: list[Callable[[str], None]] = []


def task_ids() -> list[str]:
    """Every registered task id: the built-in tasks, then plugins in the order they came."""
    return list(_paths)


def builtin_task_ids() -> list[str]:
    return list(BUILTIN)


def task_origin(task_id: str) -> str:
    """Where a task comes from: ``annobc`` for the built-in ones, else the plugin's distribution
    (or ``register()``)."""
    _check_known(task_id)
    return _origin[task_id]


def _check_known(task_id: str) -> None:
    if task_id not in _paths:
        raise ValueError(f"unknown task {task_id!r}; known tasks: {', '.join(_paths)}")


def get_task_class(task_id: str) -> type["Task"]:
    cls = _loaded.get(task_id)
    if cls is not None:
        return cls
    _check_known(task_id)
    module, name = _paths[task_id].split(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"task {task_id!r}: cannot load {_paths[task_id]} ({e})") from None
    if getattr(cls, "task_id", None) != task_id:
        raise ValueError(f"task {task_id!r}: {_paths[task_id]} has task_id "
                         f"{getattr(cls, 'task_id', None)!r}")
    _loaded[task_id] = cls
    return cls


def get_annotator_class(task_id: str) -> type["Annotator"]:
    cls = get_task_class(task_id)
    ann = _annotators.get(cls)
    if ann is None:
        raise ValueError(f"task {task_id!r} has no annotator: declare one with "
                         f"`class ...(Annotator, task={cls.__name__})` in its module")
    return ann


def pair_annotator(task_cls: type, annotator_cls: type) -> None:
    """Called by ``Annotator.__init_subclass__``: ``annotator_cls`` is ``task_cls``'s expert."""
    _annotators[task_cls] = annotator_cls


def register(task_cls: type["Task"], origin: str = "register()") -> str:
    """Register a task class at run time (its annotator pairs itself in its class statement).
    Returns the task id. Registering the same class twice is a no-op; another class under a
    registered id is an error."""
    task_id = getattr(task_cls, "task_id", None)
    if not isinstance(task_id, str) or not task_id:
        raise ValueError(f"{task_cls!r} has no task_id")
    if task_id in _paths:
        if _loaded.get(task_id) is task_cls or _paths[task_id] == _path_of(task_cls):
            _loaded[task_id] = task_cls
            return task_id
        raise ValueError(f"task {task_id!r} is already registered ({_paths[task_id]})")
    _paths[task_id], _origin[task_id] = _path_of(task_cls), origin
    _loaded[task_id] = task_cls
    for listener in _listeners:
        listener(task_id)
    return task_id


def _path_of(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def on_register(listener: Callable[[str], None]) -> None:
    """Call ``listener(task_id)`` for every task registered from now on (the env layer registers
    Gymnasium ids this way)."""
    _listeners.append(listener)


def load_plugins() -> list[str]:
    """Add the tasks that installed packages declare in the ``annobc.tasks`` entry-point group.
    A plugin whose id collides with a registered task is an error, named in one line."""
    added = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _paths:
            if _paths[ep.name] == ep.value:
                continue
            raise ValueError(f"plugin task {ep.name!r} ({ep.value}) collides with the registered "
                             f"task {ep.name!r} ({_paths[ep.name]})")
        if ":" not in ep.value:
            raise ValueError(f"plugin task {ep.name!r}: entry point {ep.value!r} is not module:Class")
        _paths[ep.name] = ep.value
        _origin[ep.name] = ep.dist.name if ep.dist is not None else "entry point"
        added.append(ep.name)
        for listener in _listeners:
            listener(ep.name)
    return added


load_plugins()
