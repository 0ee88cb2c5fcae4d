"""Annotation tasks: one module per task (scene generator, GUI state machine, annotator, score).

This layer imports neither torch nor gymnasium.
"""

from annobc.tasks.base import (BUTTON_CATEGORIES, CATEGORIES, PHASES, Annotator, Button, Effect,
                               Intent, Persona, Task)
from annobc.tasks.episode import (EpisodeRecord, StepRecord, frame_hash, replay, replay_score,
                                  run_annotator)
from annobc.tasks.registry import get_task_class, task_ids
from annobc.tasks.session import Session, StepResult

__all__ = [
    "Annotator", "BUTTON_CATEGORIES", "Button", "CATEGORIES", "Effect", "EpisodeRecord", "Intent",
    "PHASES", "Persona", "Session", "StepRecord", "StepResult", "Task", "frame_hash",
    "get_task_class", "replay", "replay_score", "run_annotator", "task_ids",
]
