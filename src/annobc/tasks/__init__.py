"""Annotation tasks: the protocol (base, annotator, session, episode, registry, stats, contract)
and, under :mod:`annobc.tasks.builtin`, the nine tasks that implement it.

This layer imports neither torch nor gymnasium.
"""

from annobc.tasks.annotator import Annotator, Intent
from annobc.tasks.base import BUTTON_CATEGORIES, CATEGORIES, PHASES, Button, Effect, Persona, Task
from annobc.tasks.episode import (EpisodeRecord, StepRecord, frame_hash, replay, replay_score,
                                  run_annotator)
from annobc.tasks.registry import (get_annotator_class, get_task_class, register, task_ids,
                                   task_origin)
from annobc.tasks.session import Session, StepResult

__all__ = [
    "Annotator", "BUTTON_CATEGORIES", "Button", "CATEGORIES", "Effect", "EpisodeRecord", "Intent",
    "PHASES", "Persona", "Session", "StepRecord", "StepResult", "Task", "frame_hash",
    "get_annotator_class", "get_task_class", "register", "replay", "replay_score",
    "run_annotator", "task_ids", "task_origin",
]
