"""The task protocol: scene generator, GUI state machine and score.

A task is one class deriving from :class:`Task`, paired with an annotator
(:class:`annobc.tasks.annotator.Annotator`) that acts on it. The task
generates its ground truth from a seed, keeps the GUI state (view, annotations, undo stack), answers
what the screen shows (canvas image, overlays, status lines, selected buttons) and scores the
annotations. It knows nothing of pixels outside its canvas: :mod:`annobc.tasks.session` puts a
task on a screen, hit-tests clicks and renders frames.

Coordinates handed to a task are *data coordinates* (u, v) on its canvas data grid, with data pixel
(row i, column j) centred at (u=j, v=i); the screen size never changes a scene or a score.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Hashable

import numpy as np

if TYPE_CHECKING:
    from annobc.gui import CanvasMapper

# Every click falls in exactly one category (the first six by element, `invalid` when none is hit).
CATEGORIES = ("navigate", "place", "view", "select", "undo", "done", "invalid")
BUTTON_CATEGORIES = ("navigate", "view", "select", "undo", "done")
# Annotation phases shared by all tasks (the `phase` latent).
PHASES = ("survey", "navigate", "inspect", "place", "select", "verify", "correct", "finish")


@dataclass(frozen=True)
class Button:
    label: str
    category: str

    def __post_init__(self):
        if self.category not in BUTTON_CATEGORIES:
            raise ValueError(f"button {self.label!r}: category must be one of {BUTTON_CATEGORIES}")


@dataclass(frozen=True)
class Effect:
    """What one action did to the annotation state."""

    annotated: bool = False  # the action added or changed an annotation (not UNDO)
    wrong: bool = False  # ... and the annotation it made is wrong against the ground truth


NO_EFFECT = Effect()
_MISSING = object()  # Task.memo's marker for a key not computed yet


@dataclass(frozen=True)
class Persona:
    """Fields shared by every task's persona; tasks subclass this with their own knobs."""

    mistake_rate: float = 0.05  # probability that a decision or placement goes wrong
    notice_rate: float = 0.98  # probability that a mistake is noticed and corrected
    place_sigma: float = 0.4  # canvas placement noise, data pixels (standard deviation)
    place_max: float = 1.2  # placement noise is clipped at this radius, data pixels

    # The fields that make mistakes happen and those that make them noticed; subclasses extend
    # both with their own rates. They let one persona give the task's expert (no deliberate
    # mistakes, every mistake noticed) and the contract's harder roll-ins (mistakes tripled).
    MISTAKE_FIELDS: ClassVar[tuple[str, ...]] = ("mistake_rate",)
    NOTICE_FIELDS: ClassVar[tuple[str, ...]] = ("notice_rate",)

    def with_mistakes_scaled(self, factor: float) -> "Persona":
        """This persona with every mistake rate multiplied by ``factor`` (capped at 1)."""
        return dataclasses.replace(self, **{f: min(1.0, getattr(self, f) * factor)
                                            for f in self.MISTAKE_FIELDS})

    def without_mistakes(self) -> "Persona":
        return self.with_mistakes_scaled(0.0)

    def expert(self) -> "Persona":
        """The labeller: no deliberate mistakes, every wrong annotation noticed. Noise and
        exploration stay (a label is where this persona would click, not a sampled error)."""
        return dataclasses.replace(self.without_mistakes(), **{f: 1.0 for f in self.NOTICE_FIELDS})

    def never_noticing(self) -> "Persona":
        """This persona, noticing none of its mistakes (for states that hold one)."""
        return dataclasses.replace(self, **{f: 0.0 for f in self.NOTICE_FIELDS})


def params_to_dict(params: Any) -> dict:
    """A params dataclass as plain JSON types (tuples become lists)."""
    return json_ready(dataclasses.asdict(params))


def json_ready(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def params_from_dict(params_cls: type, values: dict | None) -> Any:
    """Build a params dataclass from a dict, checking names and turning lists into tuples."""
    values = dict(values or {})
    names = {f.name for f in dataclasses.fields(params_cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown task parameter(s) {unknown}; known: {sorted(names)}")
    fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return params_cls(**fixed)


class Task(ABC):
    """One episode of one annotation task: ground truth, GUI state, score.

    Subclasses set the class attributes and implement the abstract methods. ``UNDO`` and ``DONE``
    are handled here: annotating actions call :meth:`checkpoint` first, and UNDO restores the last
    checkpoint of ``self.ann`` (the annotation state). View state (slice, channel, tool) is not
    undone, as in the tools these tasks imitate.

    ``self.ann`` is treated as immutable: an action that changes annotations assigns a new value
    (tuples, frozen dataclasses) instead of mutating the old one. That makes a checkpoint a
    reference, and lets :meth:`memo` cache anything derived from the annotations (matching against
    the ground truth, the wrong count) until they change.
    """

    task_id: ClassVar[str]
    version: ClassVar[int] = 0
    instruction: ClassVar[str]  # one line a person reads before starting
    Params: ClassVar[type]
    buttons: ClassVar[tuple[Button, ...]]
    personas: ClassVar[dict[str, Persona]]
    # Reference ranges for the annotator's behaviour, e.g. from a human study:
    # statistic name -> (low, high). Checked by `annobc stats`.
    reference_ranges: ClassVar[dict[str, tuple[float, float]]] = {}
    # Expected score of a lucky guess: 0 for placement tasks, 1/k for a k-way decision. Uniform
    # random clicking must not do better than this (tests/tasks/test_task_contract.py).
    chance_level: ClassVar[float] = 0.0
    # The most clicks the task's expert needs to remove one wrong annotation from a state that
    # holds it (navigation back to it included); checked by tests/tasks/test_expert_contract.py.
    correction_length: ClassVar[int] = 3

    def __init__(self, params: Any, seed: int):
        self.params = params
        self.seed = int(seed)
        self.ann: Any = None
        self.done = False
        self._undo_stack: list[Any] = []
        self._memo: dict[str, Any] = {}
        self._memo_ann: Any = object()
        self._view_cache: dict[Hashable, np.ndarray] = {}
        self.setup(np.random.default_rng(self.seed))

    # -- scene and state ----------------------------------------------------------------------
    @abstractmethod
    def setup(self, rng: np.random.Generator) -> None:
        """Generate the ground truth from ``rng`` and set the initial GUI state and ``self.ann``."""

    @property
    @abstractmethod
    def data_shape(self) -> tuple[int, int]:
        """(height, width) of the canvas data grid."""

    # -- GUI state machine --------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Remember the annotation state before an annotating action, for UNDO."""
        self._undo_stack.append(self.ann)

    def memo(self, name: Hashable, compute):
        """``compute()`` cached until ``self.ann`` is replaced (see the class docstring). ``name``
        is any hashable key, e.g. a tuple naming what else the value depends on (the view)."""
        if self._memo_ann is not self.ann:
            self._memo.clear()
            self._memo_ann = self.ann
        got = self._memo.get(name, _MISSING)
        if got is _MISSING:
            got = self._memo[name] = compute()
        return got

    def press(self, label: str) -> Effect:
        if label == "UNDO":
            if self._undo_stack:
                self.ann = self._undo_stack.pop()
            return NO_EFFECT
        if label == "DONE":
            self.done = True
            return NO_EFFECT
        return self.press_button(label)

    @abstractmethod
    def press_button(self, label: str) -> Effect:
        """A click on a task button other than UNDO and DONE."""

    @abstractmethod
    def click_canvas(self, u: float, v: float) -> Effect:
        """A click on the canvas at data coordinates (u, v)."""

    # -- what the screen shows ----------------------------------------------------------------
    @abstractmethod
    def view_key(self) -> Hashable:
        """A key that identifies the canvas base image (e.g. the slice), for caching."""

    @abstractmethod
    def render_view(self, key: Hashable) -> np.ndarray:
        """Render the canvas base image of view ``key``: (h, w, 3) uint8 on the data grid."""

    def view_image(self) -> np.ndarray:
        """The current view's base image, rendered once per view key (rendering is the hot path)."""
        key = self.view_key()
        img = self._view_cache.get(key)
        if img is None:
            img = self._view_cache[key] = self.render_view(key)
        return img

    @abstractmethod
    def draw_overlays(self, canvas: np.ndarray, mapper: "CanvasMapper") -> None:
        """Draw annotations (markers, nodes, faint previous points) onto the canvas pixels."""

    def canvas_key(self) -> Hashable | None:
        """A value equal from one frame to the next only while the canvas (view image and
        overlays) stays the same, e.g. (view, annotations, picked node); None (the default):
        unknown, the canvas is drawn on every frame. A session whose buffer holds the canvas of
        an equal key leaves it as it is. It must cover everything ``view_key`` and
        ``draw_overlays`` read, and compare by value (no arrays inside)."""
        return None

    @abstractmethod
    def status(self) -> tuple[str, ...]:
        """Status lines, most important first."""

    def status_colors(self) -> tuple[tuple[int, int, int] | None, ...]:
        """A text colour per status line (None: the theme's), e.g. a label drawn in its own colour."""
        return ()

    def selected(self) -> tuple[str, ...]:
        """Labels of buttons shown as selected/active (tool, tab, toggles)."""
        return ()

    def complete(self) -> bool:
        """Whether the work the status line counts is complete (every slice has its node, every
        frame its point, ...): the DONE button is then drawn lit, as annotation tools enable their
        submit button once every required item is labelled. Whether it is right is the score's
        business; this is what the screen shows. False (the default): DONE is never lit."""
        return False

    def buttons_lit(self) -> tuple[str, ...]:
        """The buttons drawn selected: :meth:`selected`, and DONE while :meth:`complete`."""
        return self.selected() + (("DONE",) if self.complete() else ())

    # -- latents and score --------------------------------------------------------------------
    @abstractmethod
    def position(self) -> float:
        """Where in the data axis the view is, in [0, 1] (z/Z, t/T, band/B, ...)."""

    def target_point(self, k: int) -> tuple[float, float] | None:
        """Where ground-truth item ``k`` (the ``target`` latent) is on the current view, in data
        coordinates (u, v): the dot, the neurite's cross-section on this slice, the tracked cell in
        this frame, the landmark, the keypoint, the node, the plume source. None where item ``k``
        has no point on this view (e.g. k = -1, or a decision with no place). Recorded into every
        step at generation (``target_x``, ``target_y``)."""
        return None

    def target_offset(self, k: int) -> int | None:
        """How far the view is from ground-truth item ``k`` along the data axis, in steps (e.g.
        slices from a dot's brightest slice: -1 one below it), for tasks whose items sit at one
        place on that axis; None where there is no such place."""
        return None

    @abstractmethod
    def n_wrong(self) -> int:
        """Number of wrong annotations currently in the annotation state."""

    @abstractmethod
    def score(self) -> tuple[float, bool]:
        """(score in [0, 1], success) of the current annotation state."""

    @classmethod
    def default_params(cls) -> Any:
        return cls.Params()

    @classmethod
    def button(cls, label: str) -> Button:
        for b in cls.buttons:
            if b.label == label:
                return b
        raise KeyError(label)
