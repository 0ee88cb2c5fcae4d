"""The virtual annotator: a task's expert, written as a policy of the task's state.

An annotator answers one question, :meth:`Annotator.next_intent`: from the state the GUI is in now
(whoever clicked before: itself, a person, a learned policy), which click comes next. Everything
else is that policy run: :meth:`Annotator.script` from reset is a demonstration, :meth:`resume` from
any other state finishes an episode someone else began, and ``next_intent`` alone labels a policy's
states (DAgger). Demonstrations and expert labels therefore come from the same code.

Two kinds of randomness, kept apart so that two annotators of one episode agree on what to do:

- **Decisions** (explore here or not, slip on this item or not, notice this mistake or not) come
  from :meth:`Annotator.decide` and :meth:`Annotator.draw`, keyed by the episode seed and the
  occasion (e.g. ``("peek", contact)``): the same occasion gets the same outcome in every
  annotator of the episode, however many clicks came before.
- **Click noise** (where inside a button, how far off a canvas point) comes from ``self.rng``.

The persona sets the rates; :meth:`~annobc.tasks.base.Persona.expert` turns a persona into the
labeller (no deliberate mistakes, every wrong annotation noticed). An annotator may remember what it
has itself seen (the slices it visited, the mistakes it chose to leave), never what it only would
have done.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Hashable, Iterator

import numpy as np

from annobc.tasks.base import Persona
from annobc.tasks.registry import pair_annotator

if TYPE_CHECKING:
    from annobc.tasks.base import Task
    from annobc.tasks.session import Session


@dataclass
class Intent:
    """One click the annotator wants to make, with the latents it knows about."""

    x: int
    y: int
    phase: str
    target: int = -1  # the ground-truth item being worked on (Task.target_point), -1 for none
    is_correction: bool = False


class Annotator(ABC):
    """A task's scripted, seeded, fallible expert.

    Subclasses name their task in the class statement, which pairs the two in the registry::

        class DotAnnotator(Annotator, task=DotTask):
            def next_intent(self) -> Intent: ...

    and implement :meth:`next_intent`. Use :meth:`press` and :meth:`place` to build intents: they
    put button clicks at a jittered point inside the button and canvas clicks at a noisy point.
    """

    task: "Task"

    def __init_subclass__(cls, task: type | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if task is not None:
            pair_annotator(task, cls)

    def __init__(self, session: "Session", persona: Persona, rng: np.random.Generator):
        self.session = session
        self.task = session.task
        self.persona = persona
        self.rng = rng
        self._decision_seed = (int(session.task.seed), zlib.crc32(type(self).__name__.encode()))
        # UNDOs planned to take back a noticed mistake: (annotations before, after, target), in
        # order. Each runs only while the annotations are the ones it expects (see planned_undo).
        self.undo_plan: list[tuple[object, object, int]] = []

    @classmethod
    def expert(cls, session: "Session", persona: Persona, rng: np.random.Generator) -> "Annotator":
        """The labeller of ``session``: this persona without deliberate mistakes, noticing all."""
        return cls(session, persona.expert(), rng)

    @abstractmethod
    def next_intent(self) -> Intent:
        """The click this annotator makes next in the current state, whoever made the clicks
        before. Called once per state, in order, so it may remember what it has seen."""

    def script(self) -> Iterator[Intent]:
        """The clicks of one episode from the current state to DONE: the policy, run. From reset
        this is a demonstration; from any other state it finishes the episode (:meth:`resume`)."""
        while not self.task.done:
            yield self.next_intent()

    def resume(self) -> Iterator[Intent]:
        """Finish an episode someone else began (a policy's roll-in, a person's half-done work)."""
        return self.script()

    def planned_undo(self) -> Intent | None:
        """The next UNDO of :attr:`undo_plan` while the task's annotations are those it expects
        (``self.task.ann`` is replaced, never mutated, so identity tells); None, and the plan is
        dropped, once someone else changed them: the expert then fixes from the state."""
        ann = self.task.ann
        while self.undo_plan and ann is self.undo_plan[0][1]:
            self.undo_plan.pop(0)  # that UNDO landed
        if self.undo_plan and ann is self.undo_plan[0][0]:
            return self.press("UNDO", "correct", self.undo_plan[0][2], True)
        self.undo_plan = []
        return None

    # -- decisions ----------------------------------------------------------------------------
    def draw(self, key: Hashable) -> np.random.Generator:
        """A generator for the decision ``key`` (a tuple naming the occasion), the same in every
        annotator of this episode: e.g. which of two wrong turns, how many slices before noticing."""
        return np.random.default_rng([*self._decision_seed, zlib.crc32(repr(key).encode())])

    def decide(self, key: Hashable, p: float) -> bool:
        """True with probability ``p``, the same outcome for ``key`` in every annotator of this
        episode (see the module docstring)."""
        return p > 0 and bool(self.draw(key).random() < p)

    def chance(self, p: float) -> bool:
        """True with probability ``p`` from the click-noise generator: for choices that no second
        annotator needs to agree on (e.g. a jitter's side). Prefer :meth:`decide`."""
        return bool(self.rng.random() < p)

    # -- clicks -------------------------------------------------------------------------------
    def press(self, label: str, phase: str, target: int = -1, correction: bool = False) -> Intent:
        r = self.session.layout.buttons[label]
        # People click near the centre of a button, rarely on its border.
        x = int(np.clip(np.round(r.x0 + (r.w - 1) / 2 + self.rng.normal(0, r.w / 7)), r.x0 + 1, r.x1 - 2))
        y = int(np.clip(np.round(r.y0 + (r.h - 1) / 2 + self.rng.normal(0, r.h / 7)), r.y0 + 1, r.y1 - 2))
        return Intent(x, y, phase, target, correction)

    def place(self, u: float, v: float, phase: str = "place", target: int = -1,
              correction: bool = False, sigma: float | None = None) -> Intent:
        """A canvas click aimed at data point (u, v), with the persona's placement noise."""
        p = self.persona
        sigma = p.place_sigma if sigma is None else sigma
        d = self.rng.normal(0.0, sigma, 2)
        r = float(np.hypot(*d))
        if r > p.place_max:
            d *= p.place_max / r
        x, y = self.session.mapper.to_screen(u + d[0], v + d[1])
        return Intent(x, y, phase, target, correction)
