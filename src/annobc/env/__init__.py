"""Gymnasium registration: ``annobc/<task_id>-v<version>`` for every registered task, plugins and
tasks registered later with :func:`annobc.tasks.register` included. Each id also has a vector entry
point: ``gymnasium.make_vec(id, num_envs=n, vectorization_mode="vector_entry_point")`` gives an
:class:`annobc.env.vector.AnnotationVectorEnv`."""

import warnings

import gymnasium as gym

from annobc.env.annotation_env import AnnotationEnv
from annobc.env.vector import AnnotationVectorEnv
from annobc.tasks.registry import get_task_class, on_register, task_ids


def env_id(task_id: str) -> str:
    return f"annobc/{task_id}-v{get_task_class(task_id).version}"


def register_env(task_id: str) -> str:
    eid = env_id(task_id)
    if eid not in gym.registry:
        gym.register(id=eid, entry_point="annobc.env.annotation_env:AnnotationEnv",
                     vector_entry_point="annobc.env.vector:AnnotationVectorEnv",
                     kwargs={"task_id": task_id}, disable_env_checker=False)
    return eid


def register_envs() -> list[str]:
    ids = []
    for task_id in task_ids():
        try:
            ids.append(register_env(task_id))
        except ValueError as e:  # a broken plugin must not make annobc unusable
            warnings.warn(str(e), stacklevel=2)
    return ids


ENV_IDS = register_envs()
on_register(register_env)

__all__ = ["AnnotationEnv", "AnnotationVectorEnv", "ENV_IDS", "env_id", "register_env",
           "register_envs"]
