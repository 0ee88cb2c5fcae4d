"""Episode records: everything needed to replay an episode bit for bit, plus its latents.

An episode is fully determined by (task id, task version, params, seed, renderer version, screen
size, theme, GUI variant, clicks), so frames are never stored: :func:`replay` re-renders them.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import numpy as np

from annobc.gui import DEFAULT_SCREEN, DEFAULT_VARIANT, RENDERER_VERSION
from annobc.tasks.annotator import Intent
from annobc.tasks.base import params_to_dict
from annobc.tasks.registry import get_annotator_class, get_task_class
from annobc.tasks.session import Session, StepResult

# Per-step fields, in column order (see docs/data.md once datasets exist).
STEP_FIELDS = ("x", "y", "element", "category", "phase", "position", "target", "target_x",
               "target_y", "target_offset", "mistake_present", "is_mistake", "is_correction",
               "annotated", "timestamp_ms", "learner", "label_x", "label_y", "label_element",
               "label_category")


@dataclass
class StepRecord:
    x: int
    y: int
    element: str | None
    category: str
    phase: str
    position: float
    target: int
    # Where the target item is on the screen before the click (Task.target_point), -1 where it
    # has no point on this view; and the view's offset from it along the data axis
    # (Task.target_offset), None where none.
    target_x: int
    target_y: int
    target_offset: int | None
    mistake_present: bool
    is_mistake: bool
    is_correction: bool
    annotated: bool
    timestamp_ms: float | None = None  # set where a person clicked
    learner: bool = False  # a learned policy made this click: not a demonstration
    # An expert's click for the state before this one (a DAgger label of a learner's click):
    # what to imitate instead of the click made. -1 / None where there is none.
    label_x: int = -1
    label_y: int = -1
    label_element: str | None = None
    label_category: str | None = None

    @classmethod
    def from_step(cls, intent: Intent, res: StepResult, target: "TargetGeometry",
                  timestamp_ms: float | None = None):
        return cls(intent.x, intent.y, res.element, res.category, intent.phase, res.position,
                   intent.target, target.x, target.y, target.offset, res.mistake_present,
                   res.effect.wrong, intent.is_correction or res.removed_mistake,
                   res.effect.annotated, timestamp_ms)


@dataclass(frozen=True)
class TargetGeometry:
    """Where a step's target item is, read from the task before the click."""

    x: int = -1
    y: int = -1
    offset: int | None = None

    @classmethod
    def of(cls, session: Session, target: int) -> "TargetGeometry":
        if target < 0:
            return NO_TARGET
        task = session.task
        p = task.target_point(target)
        x, y = session.mapper.to_screen(*p) if p is not None else (-1, -1)
        off = task.target_offset(target)
        return cls(int(x), int(y), None if off is None else int(off))


NO_TARGET = TargetGeometry()


@dataclass
class EpisodeRecord:
    task_id: str
    task_version: int
    params: dict
    seed: int
    persona: str
    renderer_version: str
    screen: tuple[int, int]
    theme: str
    steps: list[StepRecord] = field(default_factory=list)
    score: float = 0.0
    success: bool = False
    done: bool = False
    ui_variant: str = DEFAULT_VARIANT  # the GUI variant (annobc.gui.UI_VARIANTS); `theme` is its
    # theme unless one was given explicitly

    @property
    def clicks(self) -> list[tuple[int, int]]:
        return [(s.x, s.y) for s in self.steps]

    def __len__(self) -> int:
        return len(self.steps)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["screen"] = list(self.screen)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EpisodeRecord":
        d = dict(d)
        d["screen"] = tuple(d["screen"])
        d["steps"] = [StepRecord(**{"target_x": -1, "target_y": -1, "target_offset": None, **s})
                      for s in d["steps"]]
        return cls(**d)


def annotator_rng(seed: int, persona: str) -> np.random.Generator:
    """The annotator's own generator, independent of the scene's (same seed, other stream)."""
    return np.random.default_rng([int(seed), zlib.crc32(persona.encode()), 1])


def run_annotator(task_id: str, seed: int, persona: str = "default", params: Any = None,
                  screen_size: tuple[int, int] = DEFAULT_SCREEN, theme: str | None = None,
                  max_steps: int = 1000, frames: list | None = None,
                  ui_variant: str = DEFAULT_VARIANT) -> EpisodeRecord:
    """Play one annotator episode and return its record.

    If ``frames`` is a list, the frame before every click and the final frame are appended to it.
    ``ui_variant`` and ``theme`` are as :class:`Session`'s (None: the variant's theme).
    """
    session = Session(task_id, seed, params, screen_size, theme, ui_variant)
    cls = session.task_cls
    if persona not in cls.personas:
        raise ValueError(f"unknown persona {persona!r} for {task_id}; known: {', '.join(cls.personas)}")
    annotator = get_annotator_class(task_id)(session, cls.personas[persona],
                                             annotator_rng(seed, persona))
    record = new_record(session, persona)
    play_intents(session, record, annotator.script(), max_steps, frames)
    if frames is not None:
        frames.append(session.render())
    finish_record(record, session)
    return record


def play_intents(session: Session, record: EpisodeRecord, intents: Iterator[Intent], max_steps: int,
                 frames: list | None = None) -> None:
    """Click an annotator's intents into the session and the record, until DONE or ``max_steps``
    clicks in the record; with ``frames``, the frame before each click is appended to it."""
    for intent in intents:
        if frames is not None:
            frames.append(session.render())
        target = TargetGeometry.of(session, intent.target)
        res = session.step(intent.x, intent.y)
        record.steps.append(StepRecord.from_step(intent, res, target))
        if session.done or len(record.steps) >= max_steps:
            break


def new_record(session: Session, persona: str) -> EpisodeRecord:
    return EpisodeRecord(
        task_id=session.task_id, task_version=session.task_cls.version,
        params=params_to_dict(session.task.params), seed=session.task.seed, persona=persona,
        renderer_version=RENDERER_VERSION,
        screen=(session.layout.width, session.layout.height), theme=session.screen.theme.name,
        ui_variant=session.ui_variant)


def finish_record(record: EpisodeRecord, session: Session) -> None:
    score, success = session.task.score()
    record.score, record.success = float(score), bool(success)
    record.done = session.done


def check_replayable(record: EpisodeRecord) -> None:
    cls = get_task_class(record.task_id)
    if record.renderer_version != RENDERER_VERSION:
        raise ValueError(f"episode was rendered with renderer version {record.renderer_version}, "
                         f"this is version {RENDERER_VERSION}: its frames cannot be replayed")
    if record.task_version != cls.version:
        raise ValueError(f"episode was recorded with {record.task_id}-v{record.task_version}, "
                         f"this is v{cls.version}: it cannot be replayed")


def replay_session(record: EpisodeRecord) -> Session:
    check_replayable(record)
    return Session(record.task_id, record.seed, record.params, record.screen, record.theme,
                   record.ui_variant)


def replay(record: EpisodeRecord) -> Iterator[np.ndarray]:
    """Yield the frame before every click and the final frame, re-rendered from the record."""
    session = replay_session(record)
    for x, y in record.clicks:
        yield session.render()
        session.step(x, y)
    yield session.render()


def replay_score(record: EpisodeRecord) -> tuple[float, bool]:
    session = replay_session(record)
    for x, y in record.clicks:
        session.step(x, y)
    return session.task.score()


def frame_hash(frame: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frame).tobytes()).hexdigest()
