"""Recording a person's session: a click journal flushed at every click, turned into a dataset episode.

Each session writes ``<out>/sessions/<seq>.jsonl`` (``seq`` is a server-side counter, zero-padded;
nothing the client sends is part of the name):

- line 1, the header: task, task version, params (the task's defaults, with the server's
  ``--param`` overrides for the task), seed, persona, renderer version, screen, theme,
  GUI variant (``ui_variant``; a journal without one is the default variant's), split, creation
  time;
- one ``click`` line per click, written, flushed and fsync'ed *before* the click is applied:
  ``{"kind": "click", "step": k, "x": .., "y": .., "timestamp_ms": ..}``;
- a last ``final`` line once the episode is in the dataset (or ``discarded`` for a session that
  ended with no click).

A session ends with DONE, at the step cap, when the person presses "End session", when the server
shuts down, or, for a server that was killed, when the next server starts on the same ``--out``:
journals without a ``final`` line are replayed click by click through the same env and appended to
the dataset as episodes that did not end with DONE. A session is appended at most once (its episode
id is checked against the dataset first), so a crash between the append and the ``final`` line
cannot duplicate it.

A person has no annotator intent, so the per-step latents the virtual annotators record are filled
from what the click did: ``phase`` from the click's category (see :data:`PHASE_OF_CATEGORY`),
``target`` -1, ``is_correction`` = the click was an UNDO that removed a wrong annotation.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from annobc.data import EpisodeStore, append_episodes
from annobc.data.store import CARD, DatasetError, episode_id
from annobc.gui import DEFAULT_SCREEN, DEFAULT_VARIANT, RENDERER_VERSION, get_variant
from annobc.tasks.base import PHASES, params_to_dict
from annobc.tasks.episode import EpisodeRecord, StepRecord
from annobc.tasks.session import Session, StepResult

JOURNAL_FORMAT = "annobc-human-session"
JOURNAL_VERSION = 1
SESSIONS_DIR = "sessions"
HUMAN_SEED_START = 30_000_000  # disjoint from generated datasets' seed ranges (base 0)
DEFAULT_STEP_CAP = 1000  # as `annobc generate`'s max_steps
NAME_RE = re.compile(r"^[a-z0-9_-]{1,32}$")

# A person's click has no known intent: its phase latent is read off its category.
PHASE_OF_CATEGORY = {
    "navigate": "navigate",
    "place": "place",
    "view": "inspect",
    "select": "select",
    "undo": "correct",
    "done": "finish",
    "invalid": "inspect",
}
assert set(PHASE_OF_CATEGORY.values()) <= set(PHASES)


def annotator_name(name: str | None) -> str:
    """A validated annotator name: 1-32 of [a-z0-9_-], or "anonymous" when empty."""
    if name is None or name == "":
        return "anonymous"
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError("annotator name must be 1-32 characters of a-z, 0-9, '_' or '-'")
    return name


def human_step(x: int, y: int, res: StepResult, timestamp_ms: float | None) -> StepRecord:
    """The dataset row of one person's click (latents from the click itself; see the module doc)."""
    return StepRecord(int(x), int(y), res.element, res.category, PHASE_OF_CATEGORY[res.category],
                      res.position, -1, -1, -1, None, res.mistake_present, res.effect.wrong, res.removed_mistake,
                      res.effect.annotated, None if timestamp_ms is None else float(timestamp_ms))


def _write_line(path: Path, obj: dict) -> None:
    """Append one JSON line and push it to disk before returning."""
    data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_journal(path: Path) -> tuple[dict, list[dict], dict | None]:
    """(header, clicks, closing line or None). A torn last line (killed mid-write) is ignored."""
    header, clicks, closing = None, [], None
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # an unterminated last line: a writer killed mid-write
                break
            raise ValueError(f"{path}: line {i + 1} is not JSON") from None
        kind = obj.get("kind")
        if kind == "header":
            header = obj
        elif kind == "click":
            if obj.get("step") != len(clicks):
                raise ValueError(f"{path}: click {obj.get('step')} out of order")
            clicks.append(obj)
        elif kind in ("final", "discarded"):
            closing = obj
    if header is None or header.get("format") != JOURNAL_FORMAT:
        raise ValueError(f"{path} is not an annobc session journal")
    return header, clicks, closing


@dataclass
class LiveSession:
    """One person's session in the server: the env, the record being built, the journal."""

    sid: str
    seq: int
    task_id: str
    seed: int
    persona: str
    split: str
    session: Session
    journal: Path
    step_cap: int
    record: EpisodeRecord
    t0: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    finished: bool = False
    episode_id: str | None = None  # set once the episode is in the dataset
    end_reason: str | None = None

    @property
    def steps(self) -> int:
        return len(self.record.steps)

    def elapsed_ms(self) -> float:
        return (time.monotonic() - self.t0) * 1000.0


class Recorder:
    """Sessions of one server: creating them, recording clicks, appending finished episodes to ``out``."""

    def __init__(self, out: str | Path, screen: tuple[int, int] = DEFAULT_SCREEN,
                 theme: str | None = None, step_cap: int = DEFAULT_STEP_CAP,
                 seed_start: int = HUMAN_SEED_START, split: str = "train",
                 store_frames: bool = False, ui_variant: str = DEFAULT_VARIANT,
                 params: dict[str, dict] | None = None):
        """``params``: {task: {name: value}}, the parameters other than the task's defaults that
        its sessions use (as ``annobc generate --param``), e.g. an imported ``instance``."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got {split!r}")
        if step_cap < 1:
            raise ValueError(f"step cap must be >= 1, got {step_cap}")
        self.out = Path(out)
        self.journals = self.out / SESSIONS_DIR
        self.screen = (int(screen[0]), int(screen[1]))
        self.theme = theme  # None: the variant's
        self.ui_variant = get_variant(ui_variant).name
        self.step_cap = int(step_cap)
        self.seed_start = int(seed_start)
        self.split = split
        self.store_frames = store_frames
        # An imported instance's path is recorded absolute (as annobc generate does), so that the
        # episodes replay from any working directory.
        self.params = {t: {**p, "instance": str(Path(p["instance"]).expanduser().resolve())}
                       if p.get("instance") else dict(p) for t, p in (params or {}).items()}
        for t, p in self.params.items():  # a bad value (an instance not there) fails now
            Session(t, self.seed_start, p, self.screen, self.theme, self.ui_variant)
        self.journals.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # session creation and dataset writes
        self._next_seq = 1 + max((int(p.stem) for p in self.journals.glob("*.jsonl")
                                  if p.stem.isdigit()), default=-1)

    # -- sessions ----------------------------------------------------------------------------------
    def new_session(self, sid: str, task_id: str, name: str) -> LiveSession:
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            seed = self.seed_start + seq
            session = Session(task_id, seed, self.params.get(task_id), self.screen, self.theme,
                              self.ui_variant)
            persona = f"human:{name}"
            record = EpisodeRecord(
                task_id=task_id, task_version=session.task_cls.version,
                params=params_to_dict(session.task.params), seed=seed, persona=persona,
                renderer_version=RENDERER_VERSION, screen=self.screen, theme=session.screen.theme.name,
                ui_variant=session.ui_variant)
            journal = self.journals / f"{seq:06d}.jsonl"
            header = {"kind": "header", "format": JOURNAL_FORMAT, "version": JOURNAL_VERSION,
                      "seq": seq, "task_id": task_id, "task_version": record.task_version,
                      "params": record.params, "seed": seed, "persona": persona,
                      "renderer_version": RENDERER_VERSION, "screen": list(self.screen),
                      "theme": record.theme, "ui_variant": record.ui_variant, "split": self.split,
                      "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            _write_line(journal, header)
        return LiveSession(sid, seq, task_id, seed, persona, self.split, session, journal,
                           self.step_cap, record)

    def click(self, live: LiveSession, x: int, y: int, timestamp_ms: float) -> StepResult:
        """Journal the click (flushed to disk), then step the env. The caller holds ``live.lock``
        and has validated the click."""
        k = live.steps
        _write_line(live.journal, {"kind": "click", "step": k, "x": int(x), "y": int(y),
                                   "timestamp_ms": round(float(timestamp_ms), 1)})
        res = live.session.step(int(x), int(y))
        live.record.steps.append(human_step(x, y, res, round(float(timestamp_ms), 1)))
        if live.session.done:
            self.finish(live, "done")
        elif live.steps >= live.step_cap:
            self.finish(live, "step cap")
        return res

    def finish(self, live: LiveSession, reason: str) -> str | None:
        """End a live session: append its episode to the dataset (none if it has no click)."""
        if live.finished:
            return live.episode_id
        score, success = live.session.task.score()
        live.record.score, live.record.success = float(score), bool(success)
        live.record.done = live.session.done
        live.episode_id = self._append(live.journal, live.record, live.split)
        live.finished, live.end_reason = True, reason
        return live.episode_id

    # -- the dataset -------------------------------------------------------------------------------
    def _existing_ids(self) -> set[str]:
        if not (self.out / CARD).exists():
            return set()
        return set(EpisodeStore(self.out, allow_other_renderer=True).index)

    def _append(self, journal: Path, record: EpisodeRecord, split: str) -> str | None:
        with self._lock:
            if not record.steps:
                _write_line(journal, {"kind": "discarded", "reason": "no clicks"})
                return None
            eid = episode_id(record.task_id, split, record.seed)
            if eid not in self._existing_ids():
                frames = None
                if self.store_frames:
                    from annobc.tasks.episode import replay

                    frames = [np.stack(list(replay(record)))]
                append_episodes(self.out, [record], [split], [eid], frames)
            _write_line(journal, {"kind": "final", "episode_id": eid, "length": len(record.steps),
                                  "done": record.done, "score": record.score})
            return eid

    def recover(self, errors: list[str] | None = None) -> list[str]:
        """Finalise every journal left without a closing line (a killed server); returns their
        episode ids. Their clicks are replayed through the env to rebuild the record. A journal
        that cannot be finalised is left as it is, and named in ``errors`` (raised if None)."""
        out = []
        for path in sorted(self.journals.glob("*.jsonl")):
            try:
                _drop_torn_tail(path)
                header, clicks, closing = read_journal(path)
                if closing is not None:
                    continue
                record = record_from_journal(header, clicks)
                eid = self._append(path, record, header["split"])
            except (ValueError, KeyError, TypeError, OSError) as e:
                if errors is None:
                    raise
                errors.append(f"{path}: {e}")
                continue
            if eid is not None:
                out.append(eid)
        return out


def _drop_torn_tail(path: Path) -> None:
    """Cut an unterminated last line (a writer killed mid-line), so that lines appended later
    start on a line of their own."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)
            os.fsync(f.fileno())


def record_from_journal(header: dict, clicks: list[dict]) -> EpisodeRecord:
    """Rebuild a session's episode by stepping its journaled clicks through a fresh env."""
    if header["renderer_version"] != RENDERER_VERSION:
        raise DatasetError(f"session journal was recorded under renderer {header['renderer_version']}, "
                           f"this is {RENDERER_VERSION}")
    ui_variant = header.get("ui_variant", DEFAULT_VARIANT)
    session = Session(header["task_id"], header["seed"], header["params"], tuple(header["screen"]),
                      header["theme"], ui_variant)
    if session.task_cls.version != header["task_version"]:
        raise DatasetError(f"session journal holds {header['task_id']}-v{header['task_version']}, "
                           f"this is v{session.task_cls.version}")
    record = EpisodeRecord(
        task_id=header["task_id"], task_version=header["task_version"], params=header["params"],
        seed=header["seed"], persona=header["persona"], renderer_version=header["renderer_version"],
        screen=tuple(header["screen"]), theme=header["theme"], ui_variant=session.ui_variant)
    for c in clicks:
        if session.done:
            break
        res = session.step(int(c["x"]), int(c["y"]))
        record.steps.append(human_step(c["x"], c["y"], res, c.get("timestamp_ms")))
    score, success = session.task.score()
    record.score, record.success, record.done = float(score), bool(success), session.done
    return record


def finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
