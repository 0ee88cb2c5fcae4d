"""cell_lineage_tracking: follow the highlighted cell through time and record its divisions.

Analogue: lineage annotation in time-lapse microscopy (nuclear-marker movies tracked frame by frame,
as in TrackMate, Mastodon or CellTracker): one point per frame on the tracked nucleus, and a
division event at the frame where the daughters first appear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from annobc.gui.raster import blend_pixels, mark_pixels
from annobc.tasks.textures import camera_noise
from annobc.tasks.annotator import Annotator, Intent
from annobc.tasks.base import Button, Effect, NO_EFFECT, Persona, Task
from annobc.tasks.instances import instance_file, load_instance  # noqa: F401

BANK = 384  # side of the fixed noise and texture banks, pixels
# Grey level -> colour of a slightly green-grey nuclear stain.
TINT_LUT = (np.arange(256, dtype=np.float32)[:, None] * np.array([0.93, 1.0, 0.9], np.float32)
            ).astype(np.uint8)
POINT_COLOR = (255, 225, 40)  # the track point of this frame
PREV_COLOR = (255, 225, 40)  # the previous frame's point, drawn faintly
PREV_ALPHA = 0.5
OUTLINE_COLOR = (60, 200, 255)  # the target's outline at t = 0
INSIDE_TOL = 0.5  # a point counts inside a nucleus up to this far past its edge, data pixels
MITOTIC_LONG, MITOTIC_SHORT = 1.5, 0.62  # semi-axes of a nucleus on its last frame before dividing
CLOSE_GAP = 2.5  # edge-to-edge gap (px) below which another nucleus counts as passing close


def noise_bank() -> np.ndarray:
    """Fixed unit-variance camera-like noise (2x2 mean), shared by every episode."""
    return camera_noise(BANK, 20261203)


@lru_cache(maxsize=2)
def _background(noise: float) -> np.ndarray:
    """The whole bank as frame backgrounds, 16 + noise x bank (float32, as a frame's crop
    computed it); frames copy their crop of it. Read-only, 0.6 MB."""
    bg = 16.0 + noise * noise_bank()
    bg.flags.writeable = False
    return bg


@lru_cache(maxsize=1)
def texture_bank() -> np.ndarray:
    """Fixed chromatin-like texture: fine grain plus coarse clumps, zero mean, unit variance."""
    rng = np.random.default_rng(20261204)
    f = np.fft.fftfreq(BANK)
    k2 = f[:, None] ** 2 + f[None, :] ** 2

    def smooth(sigma: float) -> np.ndarray:  # white noise under a periodic Gaussian blur
        n = np.fft.fft2(rng.normal(0.0, 1.0, (BANK, BANK)))
        a = np.fft.ifft2(n * np.exp(-2 * (np.pi * sigma) ** 2 * k2)).real
        return a / a.std()

    t = smooth(0.8) + 0.9 * smooth(2.0)
    return (t / t.std()).astype(np.float32)


@lru_cache(maxsize=32)
def _grid(R: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[-R:R + 1, -R:R + 1].astype(np.float32)
    return ys, xs


@dataclass(frozen=True)
class Params:
    size: int = 112  # canvas data grid side, pixels
    n_frames: tuple[int, int] = (20, 30)
    n_cells: tuple[int, int] = (6, 12)  # nuclei at t = 0, the close-passing ones included
    radius: tuple[float, float] = (4.5, 6.5)  # nucleus radius (major semi-axis), pixels
    target_divisions: tuple[int, int] = (1, 2)  # divisions along the followed lineage
    divide_prob: float = 0.3  # probability that any other nucleus divides once
    encounters: tuple[int, int] = (1, 2)  # neighbours made to pass close to the target
    speed: tuple[float, float] = (0.8, 1.6)  # per-nucleus random-walk speed, pixels per frame
    persistence: float = 0.8  # velocity correlation from frame to frame
    noise: float = 6.0  # background noise standard deviation, grey levels
    # An imported instance (``annobc import tracks``): an instance file, or an import folder whose
    # instance the scene seed picks (see tasks.instances). Set, it replaces the generated
    # movie: its frames, nuclei (label masks) and lineage; the other parameters play no part.
    instance: str = ""


@dataclass(frozen=True)
class LineagePersona(Persona):
    jump_rate: float = 0.2  # at a frame where a neighbour passes close, clicks the neighbour
    # Keeps following the neighbour for up to this many more frames (a number drawn per jump);
    # the default follows none: it notices on the next frame, whatever a coin says.
    follow_max: int = 0
    late_rate: float = 0.15  # records a division one frame late
    notice_rate: float = 0.95  # notices a mistake soon after making it
    verify_notice_rate: float = 0.8  # finds a mistake it missed in the final check
    # Looks at a coin's rate: the default looks never (a close pass is judged on a hidden gap).
    peek_rate: float = 0.0  # at a close pass, looks one frame ahead before deciding
    div_peek_rate: float = 0.0  # at a division, looks back at the mother before recording it
    survey: bool = True  # plays the movie forward to the last frame and back before tracking
    # Steps back through every frame at the end to check the track; the default presses DONE
    # right after the last frame's point, when the status shows ``POINTS T/T``.
    verify: bool = False

    MISTAKE_FIELDS: ClassVar[tuple[str, ...]] = Persona.MISTAKE_FIELDS + ("jump_rate", "late_rate")
    NOTICE_FIELDS: ClassVar[tuple[str, ...]] = Persona.NOTICE_FIELDS + ("verify_notice_rate",)


@dataclass
class Cell:
    a: float  # major semi-axis, pixels
    b: float  # minor semi-axis
    angle: float  # orientation of the major axis, radians
    birth: int  # first frame
    death: int  # last frame
    brightness: float
    tex: tuple[int, int]  # texture bank offset
    divides: bool = False  # at death + 1 it is replaced by two daughters
    div_angle: float = 0.0  # division axis (its shape at the last frame is elongated along it)
    parent: int = -1
    children: tuple[int, ...] = ()


class CellLineageTracking(Task):
    """Follow the outlined nucleus through a time-lapse movie and record its divisions.

    ## Description
    A time-lapse movie of fluorescent, textured nuclei that move by correlated random walks. Some
    divide: the mother elongates for one frame, then two daughters separate. At t = 0 one nucleus is
    outlined: it is the target. The annotator places one track point per frame on the nucleus it
    follows and records a division (DIV) at the first frame that shows the two daughters. At a
    division it follows the daughter closer to the mother's last position, which the faint
    previous-frame point shows.

    ## Action Space
    A left click at a screen pixel. Buttons: ``PREV``, ``NEXT`` (navigate in time), ``DIV`` (select:
    toggles a division at the current frame), ``UNDO``, ``DONE``. A canvas click places the track
    point of the current frame (a second click on the same frame replaces it).

    ## Observation Space
    The rendered screen: the current frame with this frame's track point (a yellow x), the previous
    frame's point drawn faintly (a + at half opacity), the target outlined at t = 0, the status lines
    ``T <t>/<T-1>  POINTS <n>/<T>`` and ``DIVS <k> AT <frames>``, and DIV highlighted while the
    current frame holds a recorded division.

    ## Rewards
    Zero until the episode ends, then the mean of the track accuracy (the fraction of frames whose
    point lies inside the right nucleus; frames without a point count as wrong) and the division F1
    (recorded division frames against the true ones, exact frame).

    ## Episode End
    DONE terminates; the env's step cap truncates. Success: track accuracy >= 0.95 and the recorded
    divisions are exactly the true ones.

    ## Arguments
    See :class:`Params`: frames, nuclei, radius, divisions along the lineage and elsewhere, close
    encounters, random-walk speed and persistence, noise; or ``instance``, an imported movie with
    its label masks and tracks (``annobc import tracks``): its frames are shown instead, the
    outlined nucleus is a lineage's root, and a point is inside a nucleus where its mask is.

    ## Version History
    - v0: initial version.
    - v1: the annotator is a policy of the state (``next_intent``), so it finishes any episode and
      labels any state; its decisions are keyed by frame; steps record the followed nucleus's point.
    - v2: the default annotator decides on what the screen shows: it plays the movie forward to
      the last frame and back before tracking (deterministic, ends at ``T 0``) and presses DONE
      right after the last frame's point (``POINTS T/T``; no verify sweep back through the
      movie); no look-ahead at close passes or look-back at divisions (coins); a jump to a
      neighbour is noticed on the next frame (no follow length drawn); and one correction rule
      for demonstrations and labels: UNDO while the latest annotation is wrong and drawn (a
      point on its frame or faintly on the next, a DIV on its frame), else go there and fix it.
      The DONE button is drawn lit while the status shows ``POINTS T/T`` (``complete()``).
    """

    task_id = "cell_lineage_tracking"
    version = 2
    instruction = ("Follow the outlined cell through time, one point per frame; at a division press "
                   "DIV and follow the daughter closer to the mother's last position.")
    Params = Params
    buttons = (Button("PREV", "navigate"), Button("NEXT", "navigate"), Button("DIV", "select"),
               Button("UNDO", "undo"), Button("DONE", "done"))
    _images: np.ndarray | None = None  # (T, size, size) uint8 frames of an imported instance
    _labels: np.ndarray | None = None  # (T, size, size) its nuclei: k + 1 where nucleus k is
    # The expert re-clicks a wrong point or toggles a wrong DIV off on the frame it is shown on
    # (one click), one frame away in two; the annotator notices its own mistakes one frame on.
    correction_length = 2
    personas = {
        "default": LineagePersona(),
        "surveyor": LineagePersona(survey=True, verify=False, peek_rate=0.8, div_peek_rate=0.6,
                                   jump_rate=0.12, late_rate=0.1, notice_rate=0.97, follow_max=2),
        "careless": LineagePersona(jump_rate=0.35, late_rate=0.3, notice_rate=0.85,
                                   verify_notice_rate=0.6, peek_rate=0.0, div_peek_rate=0.0,
                                   follow_max=2, survey=False, verify=True),
    }

    # -- scene ---------------------------------------------------------------------------------
    def setup(self, rng: np.random.Generator) -> None:
        p = self.params
        if p.instance:
            self._setup_instance(load_instance(p.instance, self.seed, self.task_id))
            return
        S = p.size
        T = self.n_frames = int(rng.integers(p.n_frames[0], p.n_frames[1] + 1))
        n_cells = int(rng.integers(p.n_cells[0], p.n_cells[1] + 1))
        n_enc = min(int(rng.integers(p.encounters[0], p.encounters[1] + 1)), max(n_cells - 3, 0))
        cells: list[Cell] = []
        cap = 3 * n_cells + 8
        pos = np.full((cap, T, 2), np.nan)

        def new_cell(r: float, birth: int, parent: int = -1) -> int:
            e = float(rng.uniform(0.82, 0.97))
            cells.append(Cell(a=r, b=r * e, angle=float(rng.uniform(0, np.pi)), birth=birth,
                              death=T - 1, brightness=float(rng.uniform(120, 190)),
                              tex=(int(rng.integers(0, BANK - 32)), int(rng.integers(0, BANK - 32))),
                              parent=parent))
            return len(cells) - 1

        # Random-walk nuclei at t = 0, the target (cell 0) away from the border.
        n_walk = n_cells - n_enc
        for i in range(n_walk):
            r = float(rng.uniform(*p.radius))
            k = new_cell(r, 0)
            lo, hi = (26.0, S - 27.0) if i == 0 else (r + 2, S - 3 - r)
            for _ in range(60):
                c = rng.uniform(lo, hi, 2)
                if all(np.hypot(*(c - pos[j, 0])) >= r + cells[j].a + 3 for j in range(k)):
                    break
            pos[k, 0] = c

        # Division schedule: frames t_d (daughters appear; the mother is elongated at t_d - 1).
        n_div = int(rng.integers(p.target_divisions[0], p.target_divisions[1] + 1))
        lineage_divs: list[int] = []
        t1 = int(rng.integers(4, max(5, T - 5 - 6 * (n_div - 1))))
        lineage_divs.append(t1)
        for _ in range(n_div - 1):
            lo = lineage_divs[-1] + 6
            if lo > T - 4:
                break
            lineage_divs.append(int(rng.integers(lo, T - 3)))
        other_div = {}
        for k in range(1, n_walk):
            if rng.random() < p.divide_prob:
                other_div[k] = int(rng.integers(3, T - 2))
        speed = rng.uniform(*p.speed, cap)
        rho = p.persistence
        vel = rng.normal(0.0, 1.0, (cap, 2)) * speed[:, None] * 0.7
        followed = 0
        alive = list(range(n_walk))
        for t in range(1, T):
            # Divisions happen first: the mother's last frame was t - 1.
            planned = []
            for k in list(alive):
                td = (lineage_divs[0] if lineage_divs and k == followed else other_div.get(k))
                if td != t:
                    continue
                m = cells[k]
                m.divides, m.death = True, t - 1
                alive.remove(k)
                c = pos[k, t - 1]
                r = max(m.a * 0.85, p.radius[0] * 0.85)  # daughters are smaller, never tiny
                dn, df = m.a * rng.uniform(0.4, 0.55), m.a * rng.uniform(1.35, 1.5)
                # The division axis (the mother is elongated along it on its last frame): one that
                # puts both daughters inside the field and off the other nuclei, if there is one.
                others = np.array([pos[j, t - 1] for j in alive]).reshape(-1, 2)
                orad = np.array([cells[j].a for j in alive])
                best = None
                for _ in range(8):
                    phi = float(rng.uniform(0, np.pi))
                    u = np.array([math.cos(phi), math.sin(phi)])
                    a_pos, b_pos = c + u * dn, c - u * df
                    bad = 0.0
                    for q in (a_pos, b_pos):
                        bad += float(np.clip(r + 1 - q, 0, None).sum() + np.clip(q - (S - 2 - r), 0, None).sum())
                        if len(others):
                            gap = np.hypot(*(others - q).T) - orad - r
                            bad += float(np.clip(0.5 - gap, 0, None).sum())
                    if best is None or bad < best[0]:
                        best = (bad, phi, u, a_pos, b_pos)
                    if bad == 0.0:
                        break
                _, m.div_angle, u, a_pos, b_pos = best
                near, far = new_cell(r, t, k), new_cell(r, t, k)
                m.children = (near, far)
                pos[near, t], pos[far, t] = a_pos, b_pos
                vel[near] = 0.3 * u * speed[near]
                vel[far] = -0.9 * u * speed[far]
                alive += [near, far]
                planned.append((near, far, a_pos.copy(), b_pos.copy(), c.copy()))
                if k == followed:
                    followed = near
                    lineage_divs.pop(0)
            moving = [k for k in alive if cells[k].birth < t]
            idx = np.array(moving, dtype=int)
            if len(idx):
                vel[idx] = rho * vel[idx] + math.sqrt(1 - rho * rho) * speed[idx, None] * \
                    rng.normal(0.0, 1.0, (len(idx), 2))
                # A nucleus about to divide rounds up and nearly stops.
                for k in moving:
                    td = (lineage_divs[0] if lineage_divs and k == followed else other_div.get(k))
                    if td == t + 1:
                        vel[k] *= 0.2
                pos[idx, t] = pos[idx, t - 1] + vel[idx]
            self._relax(pos, cells, alive, t)
            self._bounce(pos, vel, cells, alive, t)
            for near, far, a_pos, b_pos, c in planned:
                # Which daughter is nearer the mother's last spot must stay plain to see.
                dn_, df_ = (float(np.hypot(*(np.round(pos[j, t]) - np.round(c)))) for j in (near, far))
                if df_ - dn_ < 2.5:
                    pos[near, t], pos[far, t] = a_pos, b_pos
        self.cells = cells
        # The ground-truth lineage: at each division the daughter closer to the mother's last spot.
        fol = np.zeros(T, int)
        k = 0
        divs = []
        for t in range(T):
            if cells[k].death < t:
                mother = cells[k]
                c = np.round(pos[k, t - 1])
                k = min(mother.children, key=lambda d: float(np.hypot(*(np.round(pos[d, t]) - c))))
                divs.append(t)
            fol[t] = k
        self.fol = fol
        self.div_frames = tuple(divs)
        # Neighbours that pass close to the target: built around the track, then kept off others.
        self._add_encounters(rng, n_enc, pos)
        self.pos = np.round(pos[:len(cells)])  # rendered and scored centres, whole pixels
        self.alive = ~np.isnan(self.pos[:, :, 0])
        self.hard = self._close_frames()
        self._noise_offsets = rng.integers(0, BANK - S, (T, 2))
        self._inside_cache: dict[tuple, bool] = {}
        self._sprites: dict[tuple[int, bool], tuple[np.ndarray, int]] = {}
        # GUI state
        self.t = 0
        self.ann: tuple[tuple, tuple[int, ...]] = ((None,) * T, ())  # (points per frame, divisions)

    def _setup_instance(self, data: dict) -> None:
        """The movie of an imported instance: its frames (real image data on the task's grid), its
        nuclei as label masks (``labels``: nucleus k + 1 where k is; a point is inside a nucleus
        where the mask pixel under it is), each nucleus's lifetime, parent and children from the
        track file, and the followed lineage (``fol``, ``div_frames``) the importer chose by the
        task's rule (at a division, the daughter nearer the mother's last position)."""
        images = data["images"]
        T, h, w = images.shape
        if (h, w) != (self.params.size, self.params.size):
            raise ValueError(f"instance {data['name']} is on a {h}x{w} grid; set "
                             f"{self.task_id}.size={h}")
        self.n_frames = T
        self._images = images
        self._labels = data["labels"]
        shape, life, children = data["shape"], data["life"], data["children"]
        self.cells = [Cell(a=float(a), b=float(b), angle=float(ang), birth=int(bi), death=int(de),
                           brightness=0.0, tex=(0, 0), divides=bool((ch >= 0).sum() >= 2),
                           parent=int(pa), children=tuple(int(c) for c in ch if c >= 0))
                      for (a, b, ang), (bi, de, pa), ch in zip(shape, life, children)]
        self.pos = np.asarray(data["pos"], np.float64)  # (N, T, 2), NaN where not alive
        self.alive = ~np.isnan(self.pos[:, :, 0])
        self.fol = np.asarray(data["fol"], int)
        self.div_frames = tuple(int(d) for d in data["div_frames"])
        self.hard = self._close_frames()
        self._inside_cache = {}
        self._sprites = {}
        self.t = 0
        self.ann = ((None,) * T, ())

    def _relax(self, pos, cells, alive, t) -> None:
        """Push overlapping nuclei apart (two passes), so that nuclei touch but never overlap."""
        idx = np.array(alive, dtype=int)
        if len(idx) < 2:
            return
        rad = np.array([cells[k].a for k in idx])
        for _ in range(2):
            P = pos[idx, t]
            d = P[:, None, :] - P[None, :, :]
            dist = np.hypot(d[..., 0], d[..., 1]) + np.eye(len(idx))
            need = rad[:, None] + rad[None, :] + 1.0
            push = np.clip(need - dist, 0, None)
            np.fill_diagonal(push, 0.0)
            if not push.any():
                return
            pos[idx, t] = P + 0.5 * (push[..., None] * d / dist[..., None]).sum(1)

    def _bounce(self, pos, vel, cells, alive, t) -> None:
        S = self.params.size
        for k in alive:
            m = cells[k].a + 1.0
            for ax in (0, 1):
                x = pos[k, t, ax]
                if x < m:
                    pos[k, t, ax], vel[k, ax] = 2 * m - x, abs(vel[k, ax])
                elif x > S - 1 - m:
                    pos[k, t, ax], vel[k, ax] = 2 * (S - 1 - m) - x, -abs(vel[k, ax])
                pos[k, t, ax] = min(max(pos[k, t, ax], m), S - 1 - m)

    def _add_encounters(self, rng, n_enc: int, pos) -> None:
        p, S, T = self.params, self.params.size, self.n_frames
        used: list[int] = []
        for _ in range(n_enc):
            r = float(rng.uniform(*p.radius))
            k = len(self.cells)
            cands = [t for t in range(3, T - 3)
                     if all(abs(t - d) >= 3 for d in self.div_frames) and
                     all(abs(t - u) >= 5 for u in used)]
            plan = None
            for _ in range(12):
                if not cands:
                    break
                tc = int(rng.choice(cands))
                f = self.fol[tc]
                F = pos[f, tc]
                ang = rng.uniform(0, 2 * np.pi)
                o = np.array([math.cos(ang), math.sin(ang)])
                at = F + o * (self.cells[f].a + r + rng.uniform(0.8, 2.0))
                if not (r + 6 <= at[0] <= S - 7 - r and r + 6 <= at[1] <= S - 7 - r):
                    continue
                vf = (pos[f, tc + 1] - pos[f, tc - 1]) / 2
                side = np.array([-o[1], o[0]]) * (1 if rng.random() < 0.5 else -1)
                drift = vf + side * rng.uniform(1.4, 2.4)
                plan = (tc, at, drift)
                break
            if plan is None:
                continue
            tc, at, drift = plan
            used.append(tc)
            self.cells.append(Cell(a=r, b=r * float(rng.uniform(0.82, 0.97)),
                                   angle=float(rng.uniform(0, np.pi)), birth=0, death=T - 1,
                                   brightness=float(rng.uniform(120, 190)),
                                   tex=(int(rng.integers(0, BANK - 32)),
                                        int(rng.integers(0, BANK - 32)))))
            steps = rng.normal(0.0, 0.45, (T, 2))
            walk = np.cumsum(steps, 0)
            walk -= walk[tc]
            traj = at + (np.arange(T) - tc)[:, None] * drift + walk
            lo, hi = r + 1.0, S - 2.0 - r
            span = hi - lo  # fold the path back into the field (a reflecting border)
            traj = lo + np.abs(((traj - lo) + span) % (2 * span) - span)
            rad = np.array([c.a for c in self.cells[:-1]]) + r
            others = pos[:k]  # (k, T, 2), NaN where a nucleus is not alive
            for _ in range(3):  # keep it off every other nucleus (a touching gap at the pass)
                d = traj[None] - others
                dist = np.hypot(d[..., 0], d[..., 1]) + 1e-6
                need = rad[:, None] + np.where(np.arange(T) == tc, 0.8, 1.0)[None]
                over = np.nan_to_num(need - dist, nan=0.0).clip(0, None)
                if not over.any():
                    break
                traj = traj + np.nan_to_num(d / dist[..., None] * over[..., None]).sum(0)
                traj = traj.clip(lo, hi)
            pos[k] = traj

    def _close_frames(self) -> dict[int, int]:
        """Close passes: for each run of frames (t >= 1) in which the same nucleus stays within
        CLOSE_GAP of the followed one, the frame where they are closest -> that nucleus."""
        close: dict[int, tuple[int, float]] = {}
        rad = np.array([c.a for c in self.cells])
        parent = np.array([c.parent for c in self.cells])
        birth = np.array([c.birth for c in self.cells])
        for t in range(1, self.n_frames):
            f = self.fol[t]
            d = self.pos[:, t] - self.pos[f, t]
            gap = np.hypot(d[:, 0], d[:, 1]) - rad - rad[f]
            skip = ~self.alive[:, t]
            skip[f] = True
            if parent[f] >= 0:  # the sister daughter just after a division is not a "neighbour"
                skip |= (parent == parent[f]) & (t - birth < 3)
            gap[skip] = np.inf
            j = int(np.argmin(gap))
            if gap[j] < CLOSE_GAP:
                close[t] = (j, float(gap[j]))
        out = {}
        t = 1
        while t < self.n_frames:
            if t not in close:
                t += 1
                continue
            nb, run = close[t][0], [t]
            while run[-1] + 1 in close and close[run[-1] + 1][0] == nb:
                run.append(run[-1] + 1)
            out[min(run, key=lambda u: close[u][1])] = nb
            t = run[-1] + 1
        return out

    @property
    def data_shape(self) -> tuple[int, int]:
        return (self.params.size, self.params.size)

    # -- geometry ------------------------------------------------------------------------------
    def shape(self, k: int, t: int) -> tuple[float, float, float, bool]:
        """(a, b, angle, mitotic) of nucleus k at frame t: elongated on its last frame if it divides."""
        c = self.cells[k]
        if c.divides and t == c.death:
            return c.a * MITOTIC_LONG, c.a * MITOTIC_SHORT, c.div_angle, True
        return c.a, c.b, c.angle, False

    def inside(self, k: int, t: int, u: float, v: float) -> bool:
        key = (k, t, u, v)
        got = self._inside_cache.get(key)
        if got is None:
            got = self._inside_cache[key] = self._inside(k, t, u, v)
        return got

    def _inside(self, k: int, t: int, u: float, v: float) -> bool:
        if not self.alive[k, t]:
            return False
        if self._labels is not None:  # an imported instance: the mask pixel under the point
            S = self.params.size
            i, j = math.floor(v + 0.5), math.floor(u + 0.5)
            return 0 <= i < S and 0 <= j < S and int(self._labels[t, i, j]) == k + 1
        a, b, ang, _ = self.shape(k, t)
        dx, dy = u - self.pos[k, t, 0], v - self.pos[k, t, 1]
        ca, sa = math.cos(ang), math.sin(ang)
        xr, yr = dx * ca + dy * sa, -dx * sa + dy * ca
        return (xr / (a + INSIDE_TOL)) ** 2 + (yr / (b + INSIDE_TOL)) ** 2 <= 1.0

    def centre(self, k: int, t: int) -> tuple[float, float]:
        return float(self.pos[k, t, 0]), float(self.pos[k, t, 1])

    # -- GUI state machine ----------------------------------------------------------------------
    @property
    def points(self) -> tuple:
        return self.ann[0]

    @property
    def divisions(self) -> tuple[int, ...]:
        return self.ann[1]

    def press_button(self, label: str) -> Effect:
        if label == "PREV":
            self.t = max(self.t - 1, 0)
        elif label == "NEXT":
            self.t = min(self.t + 1, self.n_frames - 1)
        elif label == "DIV":
            self.checkpoint()
            divs = self.divisions
            if self.t in divs:
                new = tuple(d for d in divs if d != self.t)
            else:
                new = tuple(sorted(divs + (self.t,)))
            before = self.n_wrong()
            self.ann = (self.points, new)
            return Effect(annotated=True, wrong=self.n_wrong() > before)
        return NO_EFFECT

    def click_canvas(self, u: float, v: float) -> Effect:
        self.checkpoint()
        pts = list(self.points)
        pts[self.t] = (float(u), float(v))
        self.ann = (tuple(pts), self.divisions)
        return Effect(annotated=True, wrong=not self.inside(self.fol[self.t], self.t, u, v))

    # -- rendering ------------------------------------------------------------------------------
    def view_key(self):
        return self.t

    def canvas_key(self):
        return (self.t, self.ann)

    def render_view(self, key: int) -> np.ndarray:
        return self._render_frame(key)

    def _sprite(self, k: int, mitotic: bool) -> tuple[np.ndarray, int]:
        key = (k, mitotic)
        got = self._sprites.get(key)
        if got is not None:
            return got
        c = self.cells[k]
        a, b, ang, _ = self.shape(k, c.death if mitotic else c.birth)
        R = int(math.ceil(a)) + 2
        ys, xs = _grid(R)
        ca, sa = math.cos(ang), math.sin(ang)
        xr, yr = xs * ca + ys * sa, -xs * sa + ys * ca
        q = np.sqrt((xr / a) ** 2 + (yr / b) ** 2)
        edge = np.clip((1.0 - q) * b / 1.6 + 0.5, 0.0, 1.0)  # a soft, ~1.5 px rim
        oy, ox = c.tex
        tex = texture_bank()[oy:oy + 2 * R + 1, ox:ox + 2 * R + 1]
        if mitotic:
            # Condensed chromatin: brighter, smoother, with a faint waist where it will split.
            waist = 1.0 - 0.35 * np.exp(-0.5 * (xr / (0.22 * a)) ** 2)
            body = c.brightness * 1.25 * (0.9 + 0.08 * tex) * waist
        else:
            body = c.brightness * (0.8 + 0.2 * tex) * (0.88 + 0.12 * np.clip(1 - q * q, 0, 1))
        spr = (edge * body).astype(np.float32)
        self._sprites[key] = (spr, R)
        return spr, R

    def _render_frame(self, t: int) -> np.ndarray:
        if self._images is not None:  # an imported instance: its own frame, in the stain's tint
            return np.take(TINT_LUT, self._images[t], axis=0)
        p = self.params
        S = p.size
        oy, ox = self._noise_offsets[t]
        acc = _background(p.noise)[oy:oy + S, ox:ox + S].copy()
        ks = np.flatnonzero(self.alive[:, t])
        for k, x, y in zip(ks.tolist(), *self.pos[ks, t].astype(int).T.tolist()):
            c = self.cells[k]
            mitotic = c.divides and t == c.death
            got = self._sprites.get((k, mitotic))
            spr, R = got if got is not None else self._sprite(k, mitotic)
            y0, x0 = y - R, x - R
            if y0 >= 0 and x0 >= 0 and y + R < S and x + R < S:
                patch = acc[y0:y + R + 1, x0:x + R + 1]
                np.maximum(patch, spr + patch * 0.15, out=patch)
                continue
            sy0, sx0 = max(0, -y0), max(0, -x0)
            y0c, x0c = max(y0, 0), max(x0, 0)
            y1c, x1c = min(y + R + 1, S), min(x + R + 1, S)
            patch = acc[y0c:y1c, x0c:x1c]
            np.maximum(patch, spr[sy0:sy0 + y1c - y0c, sx0:sx0 + x1c - x0c] + patch * 0.15, out=patch)
        return np.take(TINT_LUT, np.clip(acc, 0, 255, out=acc).astype(np.uint8), axis=0)

    def draw_overlays(self, canvas: np.ndarray, mapper) -> None:
        # The frame's marks as pixel lists and what goes there, in drawing order, gathered once
        # per frame while the points stand.
        for ys, xs, values in self.memo(("overlay", self.t, mapper, canvas.shape),
                                        lambda: self._overlay_marks(canvas, mapper)):
            canvas[ys, xs] = values

    def _overlay_marks(self, canvas: np.ndarray, mapper) -> list:
        """(ys, xs, colour or per-pixel colours) per mark. The faint mark of the previous point is
        blended with the frame's base image, which the canvas holds when this is computed (it is
        the first mark drawn where it is drawn)."""
        h, w = canvas.shape[:2]
        ps = mapper.pixel_size
        r = max(2, round(2 * ps))
        t = self.t
        out = []
        if t == 0:
            x, y = mapper.to_canvas_px(*self.centre(0, 0))
            out.append((*mark_pixels("ring", max(3, round((self.cells[0].a + 2.5) * ps)), x, y, h, w),
                        OUTLINE_COLOR))
        pts = self.points
        if t > 0 and pts[t - 1] is not None:
            x, y = mapper.to_canvas_px(*pts[t - 1])
            ys, xs = mark_pixels("cross", r, x, y, h, w)
            out.append((ys, xs, blend_pixels(canvas[ys, xs], PREV_COLOR, PREV_ALPHA)))
        if pts[t] is not None:
            x, y = mapper.to_canvas_px(*pts[t])
            out.append((*mark_pixels("x", r, x, y, h, w), POINT_COLOR))
        return out

    def status(self) -> tuple[str, ...]:
        n = self.memo("n_points", lambda: sum(q is not None for q in self.points))
        divs = self.divisions
        shown = " ".join(str(d) for d in divs[:6]) + (" ..." if len(divs) > 6 else "")
        return (f"T {self.t}/{self.n_frames - 1}  POINTS {n}/{self.n_frames}",
                f"DIVS {len(divs)}" + (f" AT {shown}" if divs else ""))

    def selected(self) -> tuple[str, ...]:
        return ("DIV",) if self.t in self.divisions else ()

    def complete(self) -> bool:  # POINTS T/T
        return self.memo("n_points", lambda: sum(q is not None for q in self.points)) == self.n_frames

    def undo_change(self) -> tuple | None:
        """What UNDO would change: ``("point", frame, the point it puts back)`` or
        ``("div", frame)`` (the division toggled back), None where it would change nothing.
        Every annotating click changes one frame's point or one division."""
        if not self._undo_stack:
            return None
        (pb, db), (pa, da) = self._undo_stack[-1], self.ann
        if db != da:
            return ("div", min(set(db) ^ set(da)))
        f = next((i for i, (a, b) in enumerate(zip(pb, pa)) if a != b), None)
        return None if f is None else ("point", f, pb[f])

    # -- latents and score ----------------------------------------------------------------------
    def position(self) -> float:
        return self.t / (self.n_frames - 1)

    def target_point(self, k: int) -> tuple[float, float] | None:
        if 0 <= k < len(self.cells) and self.alive[k, self.t]:
            return self.centre(k, self.t)
        return None

    def point_ok(self, t: int) -> bool:
        q = self.points[t]
        return q is not None and self.inside(self.fol[t], t, *q)

    def _evaluate(self) -> tuple[int, int, int]:
        """(frames with a right point, wrong points, wrong division frames)."""
        def compute():
            good = bad = 0
            for t, q in enumerate(self.points):
                if q is None:
                    continue
                if self.inside(self.fol[t], t, *q):
                    good += 1
                else:
                    bad += 1
            wrong_divs = sum(d not in self.div_frames for d in self.divisions)
            return good, bad, wrong_divs
        return self.memo("eval", compute)

    def n_wrong(self) -> int:
        _, bad, wrong_divs = self._evaluate()
        return bad + wrong_divs

    def track_accuracy(self) -> float:
        return self._evaluate()[0] / self.n_frames

    def division_f1(self) -> float:
        truth, rec = set(self.div_frames), set(self.divisions)
        if not truth and not rec:
            return 1.0
        return 2 * len(truth & rec) / (len(truth) + len(rec))

    def score(self) -> tuple[float, bool]:
        acc = self.track_accuracy()
        f1 = self.division_f1()
        return 0.5 * (acc + f1), bool(acc >= 0.95 and set(self.divisions) == set(self.div_frames))


@dataclass
class Jump:
    """A jump to the close neighbour: its point on frames ``start`` to ``last``; if noticed, then
    NEXT (the two have drifted apart), after which the state rule fixes it: UNDO of the latest
    wrong point while it is drawn (faintly, one frame on), PREV, ..., the right nucleus."""

    start: int
    neighbour: int
    last: int
    noticed: bool
    anns: list  # the annotation states it has passed through, from the one before the first point
    undoing: bool = False


@dataclass
class LateDivision:
    """A division recorded one frame late: the point on ``frame`` without DIV, NEXT, DIV; if
    noticed, then (the state rule) UNDO on that frame, where the DIV shows, PREV and DIV."""

    frame: int  # the true division frame
    noticed: bool
    anns: list  # the annotation states it has passed through, from the one before the point


def one_point_changed(before: tuple, after: tuple, frame: int) -> bool:
    """Whether annotation state ``after`` is ``before`` with only the point of ``frame`` changed."""
    (pb, db), (pa, da) = before, after
    return (da == db and pa[frame] != pb[frame] and pa[:frame] == pb[:frame]
            and pa[frame + 1:] == pb[frame + 1:])


class LineageAnnotator(Annotator, task=CellLineageTracking):
    """Clicks the followed nucleus, NEXT, clicks, ...; DIV then the nearer daughter at a division;
    then DONE (the persona's survey before, its verify sweep back through the movie after). From
    any state: UNDO where the latest annotation is wrong and drawn on screen; else fixes the wrong
    annotation nearest the current frame (re-click, DIV toggle), fills the lowest frame missing
    its point or division, checks, DONE.

    Memory: the multi-click mistake under way (:class:`Jump`, :class:`LateDivision`), the wrong
    annotations it has made and left, the frames it has looked at around the frame it works on,
    how far its survey got and the frames its final check has seen."""

    persona: LineagePersona
    task: CellLineageTracking

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._plan: Jump | LateDivision | None = None
        self._made: set[tuple[str, int]] = set()  # the occasions of the mistakes it has made
        self._left_points: dict[int, tuple] = {}  # frame -> the wrong point it left there
        self._left_late: set[int] = set()  # frames holding a late DIV it left
        self._survey = "ahead" if self.persona.survey else "done"  # then "back", then "done"
        self._peeked: set[int] = set()  # frames it worked on and saw the next frame of
        self._peeked_back: set[int] = set()  # ... and the previous frame of
        self._was_at_work: int | None = None  # the frame it worked on, if it was there last call
        self._checked: set[int] = set()  # frames its final check has seen

    # -- the policy -----------------------------------------------------------------------------
    def next_intent(self) -> Intent:
        t = self.task
        self._observe()
        if self._plan is not None:
            intent = (self._continue_jump(self._plan) if isinstance(self._plan, Jump)
                      else self._continue_late(self._plan))
            if intent is not None:
                return intent
            self._plan = None
        if self._survey != "done":
            return self.press("NEXT" if self._survey == "ahead" else "PREV", "survey")
        undo = self._undo_fix()
        if undo is not None:
            return undo
        work = self._working_frame()
        wrong = self._wrong_frames()
        if wrong:
            # The nearest of the wrong frames and the frame to work on; a wrong one on a tie.
            f = min(wrong, key=lambda g: (abs(g - t.t), g))
            if work is None or abs(f - t.t) <= abs(work - t.t):
                return self._fix(f)
        if work is not None:
            return self._work_on(work)
        if self.persona.verify:
            unchecked = [f for f in range(t.n_frames) if f not in self._checked]
            if unchecked:
                label = "PREV" if min(unchecked) < t.t else "NEXT"
                return self.press(label, "verify", int(t.fol[t.t]))
        return self.press("DONE", "finish")

    def _observe(self) -> None:
        """Update what it has seen: the survey's progress, a look beside the frame it works on,
        and, once the track looks complete to it, the frame its final check is on (where it may
        notice a mistake it left)."""
        t, p = self.task, self.persona
        if self._survey != "done":
            if t.divisions or any(q is not None for q in t.points):
                self._survey = "done"  # the movie is being annotated: no survey now
            elif self._survey == "ahead" and t.t == t.n_frames - 1:
                self._survey = "back"
            elif self._survey == "back" and t.t == 0:
                self._survey = "done"
        work = self._working_frame()
        if work is not None and self._was_at_work == work:
            if t.t == work + 1:
                self._peeked.add(work)
            elif t.t == work - 1:
                self._peeked_back.add(work)
        self._was_at_work = work if t.t == work else None
        f = t.t
        if p.verify and work is None and not self._wrong_frames() and f not in self._checked:
            self._checked.add(f)
            if f in self._left_points and self.decide(("verify", "point", f), p.verify_notice_rate):
                del self._left_points[f]
            if f in self._left_late and self.decide(("verify", "div", f), p.verify_notice_rate):
                self._left_late.discard(f)

    def _undo_fix(self) -> Intent | None:
        """UNDO where the latest annotation is a wrong one (not one it has left), UNDO puts back
        nothing wrong, and what it removes is on screen: a point on its frame (or faintly on the
        next), a division on its frame (DIV highlighted). Demonstrations and labels share it:
        elsewhere a wrong annotation is gone to and fixed (:meth:`_fix`)."""
        t = self.task
        ch = t.undo_change()
        if ch is None:
            return None
        if ch[0] == "point":
            _, f, before = ch
            q = t.points[f]
            wrong = q is not None and not t.point_ok(f) and self._left_points.get(f) != q
            fixes = before is None or t.inside(int(t.fol[f]), f, *before)
            shown = t.t in (f, f + 1)
        else:
            f = ch[1]
            wrong = ((f in t.divisions and f not in t.div_frames and f not in self._left_late)
                     or (f in t.div_frames and f not in t.divisions))
            fixes, shown = True, t.t == f
        if wrong and fixes and shown:
            return self.press("UNDO", "correct", int(t.fol[f]), True)
        return None

    def _wrong_frames(self) -> list[int]:
        """Frames holding a wrong point or division, but for the mistakes it has left."""
        t = self.task
        out = [f for f, q in enumerate(t.points)
               if q is not None and not t.point_ok(f) and self._left_points.get(f) != q]
        out += [d for d in t.divisions if d not in t.div_frames and d not in self._left_late]
        return out

    def _working_frame(self) -> int | None:
        """The lowest frame missing its point or its division (one it thinks it recorded late
        does not count as missing)."""
        t = self.task
        for f, q in enumerate(t.points):
            if q is None:
                return f
            if (f in t.div_frames and f not in t.divisions
                    and not (f + 1 in self._left_late and f + 1 in t.divisions)):
                return f
        return None

    def _towards(self, f: int, phase: str, k: int, correction: bool = False) -> Intent:
        return self.press("PREV" if f < self.task.t else "NEXT", phase, k, correction)

    def _point(self, f: int, phase: str, correction: bool = False) -> Intent:
        k = int(self.task.fol[f])
        return self.place(*self.task.centre(k, f), phase, k, correction)

    def _fix(self, f: int) -> Intent:
        """Towards wrong frame ``f``; there, DIV off where it holds no division, else a re-click."""
        t = self.task
        k = int(t.fol[f])
        if t.t != f:
            return self._towards(f, "correct", k, True)
        if f in t.divisions and f not in t.div_frames and f not in self._left_late:
            return self.press("DIV", "correct", k, True)
        return self._point(f, "correct", True)

    def _work_on(self, f: int) -> Intent:
        """Towards frame ``f``, the lowest one left to do; there, its division and its point, with
        the persona's looks around and mistakes."""
        t, p = self.task, self.persona
        k = int(t.fol[f])
        # Only its division is missing: a frame it did before, put right.
        repair = t.points[f] is not None
        if t.t != f:
            back_from_look = ((t.t == f + 1 and f in self._peeked)
                              or (t.t == f - 1 and f in self._peeked_back))
            phase = "correct" if repair else "inspect" if back_from_look else "navigate"
            return self._towards(f, phase, k, repair)
        if f in t.div_frames:
            if f not in t.divisions:
                late_possible = f + 1 < t.n_frames and f + 1 not in t.div_frames
                if (not repair and late_possible and ("late", f) not in self._made
                        and self.decide(("late", f), p.late_rate)):
                    # It takes the two daughters for a still-dividing nucleus.
                    self._made.add(("late", f))
                    self._plan = LateDivision(f, self.decide(("notice", "late", f), p.notice_rate),
                                              [t.ann])
                    return self._continue_late(self._plan)
                if (not repair and f not in self._peeked_back
                        and self.decide(("div_peek", f), p.div_peek_rate)):
                    return self.press("PREV", "inspect", k)  # the elongated mother and where it was
                return self.press("DIV", "correct" if repair else "select", k, repair)
        elif f in t.hard:
            if (f < t.n_frames - 1 and f not in self._peeked
                    and self.decide(("peek", f), p.peek_rate)):
                return self.press("NEXT", "inspect", k)
            span = self._jump_span(f)
            if (span >= 0 and ("jump", f) not in self._made
                    and self.decide(("jump", f), p.jump_rate)):
                self._made.add(("jump", f))
                follow = int(self.draw(("follow", f)).integers(0, span + 1))
                self._plan = Jump(f, t.hard[f], f + follow,
                                  self.decide(("notice", "jump", f), p.notice_rate), [t.ann])
                return self._continue_jump(self._plan)
        return self._point(f, "place")

    def _jump_span(self, f: int) -> int:
        """How many more frames the annotator could follow the close neighbour (-1: no jump here)."""
        t = self.task
        if f in t.div_frames or f + 1 in t.div_frames:
            return -1
        nb = t.hard[f]
        m = 0
        while m < self.persona.follow_max:
            g = f + m + 1
            if g > t.n_frames - 1 or not t.alive[nb, g] or g in t.div_frames or g + 1 in t.div_frames:
                break
            m += 1
        return m

    # -- mistakes under way ---------------------------------------------------------------------
    def _continue_jump(self, j: Jump) -> Intent | None:
        """The jump's next click, or None where it is over or the state has left it."""
        t = self.task
        k = int(t.fol[j.start])
        if j.undoing:
            return None
        if t.ann is not j.anns[-1]:  # its last point landed, or someone else changed things
            g = j.start + len(j.anns) - 1
            if not (one_point_changed(j.anns[-1], t.ann, g)
                    and t.inside(j.neighbour, g, *t.points[g])):
                return None
            j.anns.append(t.ann)
        g = j.start + len(j.anns) - 1  # the next frame to point the neighbour on
        if g <= j.last:
            if t.t == g:
                return self.place(*t.centre(j.neighbour, g), "place", int(t.fol[g]))
            return self.press("NEXT", "navigate", int(t.fol[g])) if t.t == g - 1 else None
        if not j.noticed:
            # It picks up the right nucleus again next frame, leaving these points wrong.
            self._left_points.update({f: t.points[f] for f in range(j.start, j.last + 1)})
            return None
        # Noticed on the next frame, where the two have drifted apart; from there the state
        # rule fixes it (UNDO of the latest point, drawn faintly; PREV; UNDO; ...; re-click).
        j.undoing = True
        if t.t == j.last < t.n_frames - 1:
            return self.press("NEXT", "navigate", k)
        return None

    def _continue_late(self, late: LateDivision) -> Intent | None:
        """The late division's next click, or None where it is over or the state has left it."""
        t = self.task
        f = late.frame
        k = int(t.fol[f])
        if t.ann is not late.anns[-1]:
            before = late.anns[-1]
            if len(late.anns) == 1:  # its point on the division frame
                landed = one_point_changed(before, t.ann, f) and t.point_ok(f)
            elif len(late.anns) == 2:  # DIV one frame on
                late_divs = tuple(sorted(before[1] + (f + 1,)))
                landed = t.points == before[0] and t.divisions == late_divs
            else:
                return None  # UNDO took the late DIV away (or someone changed things): over
            if not landed:
                return None
            late.anns.append(t.ann)
        if len(late.anns) == 1:
            return self._point(f, "place") if t.t == f else None
        if len(late.anns) == 2:
            if t.t == f:
                return self.press("NEXT", "navigate", k)
            return self.press("DIV", "select", int(t.fol[f + 1])) if t.t == f + 1 else None
        # Over. Noticed (the daughters were already apart on the frame before), the state rule
        # undoes the DIV on this frame, where it shows, and records it one frame back.
        if not late.noticed:
            self._left_late.add(f + 1)
        return None
