"""Gymnasium registration: ``annobc/<task_id>-v<version>`` for every registered task."""

import gymnasium as gym

from annobc.env.annotation_env import AnnotationEnv
from annobc.tasks.registry import get_task_class, task_ids


def env_id(task_id: str) -> str:
    return f"annobc/{task_id}-v{get_task_class(task_id).version}"


def register_envs() -> list[str]:
    ids = []
    for task_id in task_ids():
        eid = env_id(task_id)
        if eid not in gym.registry:
            gym.register(id=eid, entry_point="annobc.env.annotation_env:AnnotationEnv",
                         kwargs={"task_id": task_id}, disable_env_checker=False)
        ids.append(eid)
    return ids


ENV_IDS = register_envs()

__all__ = ["AnnotationEnv", "ENV_IDS", "env_id", "register_envs"]
