"""animal_behavioral_tracking: mark front and back of every animal in every frame, keeping identities.

Analogue: multi-animal tracking for behaviour analysis (an open-field arena filmed from above, with
identities labelled by hand in the style of multi-animal pose-tracking tools).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

import numpy as np

from annobc.gui.raster import mark_offsets
from annobc.tasks.textures import camera_noise
from annobc.tasks.annotator import Annotator, Intent
from annobc.tasks.base import Button, Effect, NO_EFFECT, Persona, Task

MAX_ANIMALS = 3
ANIMAL_LABELS = tuple(f"A{k + 1}" for k in range(MAX_ANIMALS))
MARKERS = ("FRONT", "BACK")
# Identity colours: the paint tags of frame 0 and every marker of that identity.
ID_COLORS = ((240, 50, 40), (40, 215, 60), (40, 130, 255))
MARKER_SHAPES = ("cross", "x")  # FRONT, BACK
PREV_ALPHA = 0.5  # the previous frame's markers are drawn faintly
MATCH_PX = 3.0  # a marker matches within this many data pixels
SUCCESS_SCORE = 0.9
NOISE_BANK = 256

FLOOR = np.array((198.0, 197.0, 190.0), np.float32)
WALL = np.array((92.0, 96.0, 104.0), np.float32)
FUR = np.array((50.0, 48.0, 48.0), np.float32)
EAR = np.array((112.0, 88.0, 90.0), np.float32)
TAIL = np.array((150.0, 122.0, 118.0), np.float32)

# Animal geometry along the body axis, in units of body length (nose tip to tail base).
FRONT_AT, BACK_AT = 0.50, -0.44  # ground-truth front (snout) and back (tail base)
BODY_C, BODY_A, BODY_B = -0.06, 0.40, 0.21
HEAD_C, HEAD_A, HEAD_B = 0.33, 0.21, 0.15
EAR_AX, EAR_AY, EAR_R = 0.25, 0.15, 0.075
TAIL_LEN = 0.75
_TAIL_S = np.linspace(0.0, 1.0, 24)


def noise_bank() -> np.ndarray:
    """A fixed field of unit-variance, slightly correlated camera noise."""
    return camera_noise(NOISE_BANK, 20260131)


@lru_cache(maxsize=4)
def floor_image(size: int, wall: int) -> np.ndarray:
    """The empty arena seen from above: a lit floor with faint texture inside a darker wall."""
    g = np.random.default_rng(977).normal(0.0, 1.0, (size // 4 + 2, size // 4 + 2)).astype(np.float32)
    tex = np.kron(g, np.ones((4, 4), np.float32))[:size, :size]
    k = np.ones(5, np.float32) / 5  # smooth the blocky texture into soft stains
    tex = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 1, tex)
    tex = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 0, tex)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2
    light = 1.0 - 0.10 * (((xx - c) ** 2 + (yy - c) ** 2) / c ** 2)  # brighter in the middle
    img = FLOOR[None, None, :] * light[:, :, None] + 4.0 * tex[:, :, None]
    # Walls: a band around the floor, lit from the inside edge, with a shadow cast on the floor.
    d = np.minimum(np.minimum(xx, yy), np.minimum(size - 1 - xx, size - 1 - yy))
    in_wall = d < wall
    shade = (0.75 + 0.35 * d / wall)[:, :, None]
    img = np.where(in_wall[:, :, None], WALL[None, None, :] * shade, img)
    shadow = np.clip(1.0 - (d - wall) / 3.0, 0.0, 1.0) * (~in_wall)
    img *= (1.0 - 0.18 * shadow)[:, :, None]
    return img.astype(np.float32)


@dataclass(frozen=True)
class Params:
    size: int = 112  # canvas data grid side, pixels
    n_animals: tuple[int, int] = (2, 3)
    n_frames: tuple[int, int] = (5, 8)
    body_length: tuple[float, float] = (16.0, 19.0)  # nose to tail base, pixels
    speed: tuple[float, float] = (2.0, 6.0)  # body displacement per frame, pixels
    max_turn: float = 0.6  # largest heading change per frame, radians
    wall: int = 6  # wall thickness, pixels
    encounter: float = 11.0  # two animals meet closer than this (body to body) at least once
    min_gap: float = 6.0  # bodies never come closer than this (axis to axis), pixels
    id_margin: float = 5.0  # the previous frame decides identity by this margin, pixels
    noise: float = 6.0  # camera noise, grey levels


@dataclass(frozen=True)
class TrackPersona(Persona):
    notice_rate: float = 0.985
    order: str = "animal"  # "animal": each animal through all frames; "frame": each frame, all animals
    grouping: str = "animal"  # within a frame (order "frame"): "animal" (A, FRONT, BACK) or "marker"
    survey_rate: float = 0.85  # plays through the clip before starting
    inspect_rate: float = 0.5  # peeks at the previous frame when two animals are close
    verify_rate: float = 0.6  # steps back through the frames at the end
    swap_rate: float = 0.12  # follows the other animal when two are close
    flip_rate: float = 0.015  # puts FRONT on the tail base and BACK on the snout
    forget_rate: float = 0.012  # places with a stale selection (skips the last select)
    late_rate: float = 0.4  # a swap or flip is noticed only on the next frame
    close_dist: float = 14.0  # body-to-body distance under which animals count as close


class AnimalBehavioralTracking(Task):
    """Mark the front and back of every animal in every frame, keeping each animal's identity.

    ## Description
    An open-field arena seen from above holds 2-3 similar dark animals that move and interact over
    5-8 frames. In the first frame each animal carries a paint tag in its identity colour (A1 red,
    A2 green, A3 blue); in later frames they look alike, so identity must be carried by following
    the motion. For every frame and every animal the annotator marks the FRONT (snout) and the BACK
    (tail base) with that animal's identity. The hierarchy is animal -> marker -> place.

    ## Action Space
    A left click at a screen pixel. Buttons: ``A1``, ``A2``, ``A3`` (select the animal; a button
    beyond the scene's animal count does nothing), ``FRONT``, ``BACK`` (select the marker type),
    ``PREV``, ``NEXT`` (frames), ``UNDO``, ``DONE``. A canvas click places the selected marker of
    the selected animal in the current frame, replacing it if present.

    ## Observation Space
    The rendered screen: the current frame, this frame's markers in their identity colours (FRONT a
    ``+``, BACK an ``x``) and the previous frame's markers drawn faintly in the same colours, the
    status lines ``FRAME <t>/<T>  <animal> <marker>`` and
    ``<N> ANIMALS  HERE <m>/<2N>  ALL <k>/<2NT>``, and the selected animal and marker buttons
    highlighted.

    ## Rewards
    Zero until the episode ends, then the match rate: the fraction of (frame, animal, marker) slots
    whose marker lies within 3 data pixels of that animal's true point (missing ones count as wrong).

    ## Episode End
    DONE terminates; the env's step cap truncates. Success: match rate >= 0.9.

    ## Arguments
    See :class:`Params`: number of animals and frames, body length, speed, largest turn per frame,
    wall thickness, how close animals meet, how far apart bodies stay, the identity margin that
    keeps identity decidable from the previous frame, camera noise.

    ## Version History
    - v0: initial version.
    """

    task_id = "animal_behavioral_tracking"
    version = 0
    instruction = ("Mark FRONT and BACK of every animal in every frame; tags in frame 1 give the "
                   "identities.")
    Params = Params
    buttons = (Button("A1", "select"), Button("A2", "select"), Button("A3", "select"),
               Button("FRONT", "select"), Button("BACK", "select"),
               Button("PREV", "navigate"), Button("NEXT", "navigate"),
               Button("UNDO", "undo"), Button("DONE", "done"))
    personas = {
        "default": TrackPersona(),
        "framewise": TrackPersona(order="frame", grouping="animal", survey_rate=0.3,
                                  inspect_rate=0.25, verify_rate=0.3, late_rate=0.0),
        "hasty": TrackPersona(order="frame", grouping="marker", survey_rate=0.0, inspect_rate=0.0,
                              verify_rate=0.0, swap_rate=0.2, flip_rate=0.03, forget_rate=0.03,
                              notice_rate=0.9, late_rate=0.0),
    }

    # -- scene ---------------------------------------------------------------------------------
    def setup(self, rng: np.random.Generator) -> None:
        p = self.params
        self.n_animals = int(rng.integers(p.n_animals[0], p.n_animals[1] + 1))
        self.n_frames = int(rng.integers(p.n_frames[0], p.n_frames[1] + 1))
        n = self.n_animals
        self.body_len = rng.uniform(*p.body_length, n).tolist()
        for _ in range(500):
            sim = self._simulate(rng)
            if sim is not None:
                break
        else:  # pragma: no cover - the generator accepts within a few tries
            raise RuntimeError("could not generate an animal scene")
        self.centre, self.heading = np.array(sim[0]), np.array(sim[1])  # (T, N, 2), (T, N)
        h = np.stack([np.cos(self.heading), np.sin(self.heading)], -1)
        L = np.array(self.body_len)[None, :, None]
        self.front = self.centre + FRONT_AT * L * h
        self.back = self.centre + BACK_AT * L * h
        # Ground truth per annotation slot, idx = (t * N + k) * 2 + m.
        gt = np.stack([self.front, self.back], 2).reshape(-1, 2)
        self._gt = [(float(u), float(v)) for u, v in gt]
        self._tail_phase = rng.uniform(0, 2 * np.pi, (self.n_frames, n))
        self._tail_amp = rng.uniform(0.8, 2.5, (self.n_frames, n))
        self._noise_offsets = rng.integers(0, NOISE_BANK - p.size, (self.n_frames, 2))
        self._overlay_cache: dict = {}
        # GUI state
        self.t = 0
        self.animal = 0
        self.marker = 0
        self.ann: tuple = (None,) * (2 * n * self.n_frames)

    def _simulate(self, rng: np.random.Generator):
        """One try at trajectories: a pair approaches and meets, the others wander; None if rejected.

        Plain floats throughout: this runs a few times per reset, so it must stay cheap.
        """
        p, n, T = self.params, self.n_animals, self.n_frames
        lo, hi = p.wall + 14.0, p.size - 1 - p.wall - 14.0
        uni = rng.uniform
        a, b = (int(i) for i in rng.choice(n, 2, replace=False))
        start: list = [None] * n
        start[a] = (uni(lo, hi), uni(lo, hi))
        for _ in range(30):  # the meeting pair starts 24-36 px apart
            ang, d = uni(0.0, 2 * math.pi), uni(24.0, 36.0)
            c = (start[a][0] + d * math.cos(ang), start[a][1] + d * math.sin(ang))
            if lo <= c[0] <= hi and lo <= c[1] <= hi:
                start[b] = c
                break
        else:
            return None
        for k in range(n):  # every other animal keeps its distance
            if start[k] is None:
                for _ in range(30):
                    c = (uni(lo, hi), uni(lo, hi))
                    if all(math.hypot(c[0] - q[0], c[1] - q[1]) >= 28.0 for q in start if q):
                        start[k] = c
                        break
                else:
                    return None
        pos = [start]
        head = [uni(-math.pi, math.pi, n).tolist()]
        goal = [tuple(g) for g in uni(lo, hi, (n, 2)).tolist()]
        speed = uni(*p.speed, (T, n)).tolist()
        jitter = rng.normal(0.0, 0.2, (T, n)).tolist()
        met = False
        for t in range(1, T):
            prev, hprev = pos[-1], head[-1]
            moves = []  # (heading change, step) per animal
            for k in range(n):
                cx, cy = prev[k]
                if k in (a, b) and not met:
                    gx, gy = prev[b if k == a else a]
                else:
                    gx, gy = goal[k]
                    if math.hypot(gx - cx, gy - cy) < 8.0:
                        gx, gy = goal[k] = (uni(lo, hi), uni(lo, hi))
                want = math.atan2(gy - cy, gx - cx)
                turn = (want - hprev[k] + math.pi) % (2 * math.pi) - math.pi + jitter[t][k]
                moves.append((max(-p.max_turn, min(p.max_turn, turn)), speed[t][k]))
            # The approaching pair slows down as it closes in, to meet without colliding.
            for f in (1.0, 0.5, 0.25, 0.0):
                cur, hd = [], []
                for k in range(n):
                    turn, step = moves[k]
                    if k in (a, b) and not met:
                        turn, step = turn * f, step * f
                    h1 = hprev[k] + turn
                    cur.append((prev[k][0] + step * math.cos(h1), prev[k][1] + step * math.sin(h1)))
                    hd.append(h1)
                if met or _seg_dist(*self._axis(cur[a], hd[a], a),
                                    *self._axis(cur[b], hd[b], b)) >= p.min_gap + 1.0:
                    break
            pos.append(cur)
            head.append(hd)
            if not met and _seg_dist(*self._axis(cur[a], hd[a], a),
                                     *self._axis(cur[b], hd[b], b)) < p.encounter + 2.0:
                met = True  # after meeting they part: new goals away from each other
                for k, o in ((a, b), (b, a)):
                    gx = 2 * cur[k][0] - cur[o][0]
                    gy = 2 * cur[k][1] - cur[o][1]
                    goal[k] = (min(max(gx, lo), hi), min(max(gy, lo), hi))
        return (pos, head) if self._acceptable(pos, head) else None

    def _axis(self, c, theta, k):
        """(front, back) points of animal k at centre c and heading theta."""
        L = self.body_len[k]
        hx, hy = math.cos(theta) * L, math.sin(theta) * L
        return ((c[0] + FRONT_AT * hx, c[1] + FRONT_AT * hy), (c[0] + BACK_AT * hx, c[1] + BACK_AT * hy))

    def _acceptable(self, pos, head) -> bool:
        p, n, T = self.params, self.n_animals, self.n_frames
        edge_lo, edge_hi = p.wall + 2.0, p.size - 1 - p.wall - 2.0
        axes = [[self._axis(pos[t][k], head[t][k], k) for k in range(n)] for t in range(T)]
        met = False
        hyp = math.hypot
        for t in range(T):
            for k in range(n):
                for q in axes[t][k]:
                    if not (edge_lo <= q[0] <= edge_hi and edge_lo <= q[1] <= edge_hi):
                        return False
            for i in range(n):
                for j in range(i + 1, n):
                    d = _seg_dist(*axes[t][i], *axes[t][j])
                    if d < p.min_gap:
                        return False
                    if t >= 1 and d < p.encounter:
                        met = True
            if t == 0:
                continue
            # Identity and orientation must be decidable from the previous frame's points alone:
            # each animal's own previous points are nearer, by a margin, than any other animal's,
            # and nearer than its own points swapped front for back.
            for i in range(n):
                (fx, fy), (bx, by) = axes[t][i]
                (pfx, pfy), (pbx, pby) = axes[t - 1][i]
                own = 0.5 * (hyp(fx - pfx, fy - pfy) + hyp(bx - pbx, by - pby))
                if 0.5 * (hyp(fx - pbx, fy - pby) + hyp(bx - pfx, by - pfy)) < own + p.id_margin:
                    return False
                for j in range(n):
                    if j != i:
                        (pfx, pfy), (pbx, pby) = axes[t - 1][j]
                        if 0.5 * (hyp(fx - pfx, fy - pfy) + hyp(bx - pbx, by - pby)) < own + p.id_margin:
                            return False
        return met

    @property
    def data_shape(self) -> tuple[int, int]:
        return (self.params.size, self.params.size)

    def slot(self, t: int, k: int, m: int) -> int:
        return (t * self.n_animals + k) * 2 + m

    def gt_point(self, t: int, k: int, m: int) -> tuple[float, float]:
        return self._gt[self.slot(t, k, m)]

    def body_distance(self, t: int, i: int, j: int) -> float:
        """Distance between the body axes of animals i and j in frame t, pixels."""
        return _seg_dist(self.front[t, i], self.back[t, i], self.front[t, j], self.back[t, j])

    def nearest_other(self, t: int, k: int) -> tuple[int, float]:
        others = [j for j in range(self.n_animals) if j != k]
        j = min(others, key=lambda j: self.body_distance(t, k, j))
        return j, self.body_distance(t, k, j)

    # -- GUI state machine ----------------------------------------------------------------------
    def press_button(self, label: str) -> Effect:
        if label == "NEXT":
            self.t = min(self.t + 1, self.n_frames - 1)
        elif label == "PREV":
            self.t = max(self.t - 1, 0)
        elif label in ANIMAL_LABELS:
            k = ANIMAL_LABELS.index(label)
            if k < self.n_animals:
                self.animal = k
        elif label in MARKERS:
            self.marker = MARKERS.index(label)
        return NO_EFFECT

    def click_canvas(self, u: float, v: float) -> Effect:
        i = self.slot(self.t, self.animal, self.marker)
        self.checkpoint()
        ann = list(self.ann)
        ann[i] = (float(u), float(v))
        self.ann = tuple(ann)
        return Effect(annotated=True, wrong=not self._ok(i, ann[i]))

    # -- rendering ------------------------------------------------------------------------------
    def view_key(self):
        return self.t

    def render_view(self, key: int) -> np.ndarray:
        return self._render_frame(key)

    def _render_frame(self, t: int) -> np.ndarray:
        p, s = self.params, self.params.size
        img = floor_image(s, p.wall).copy()
        for k in range(self.n_animals):
            self._draw_animal(img, t, k)
        oy, ox = self._noise_offsets[t]
        img += (p.noise * noise_bank()[oy:oy + s, ox:ox + s])[:, :, None]
        return np.clip(img, 0, 255).astype(np.uint8)

    def _draw_animal(self, img: np.ndarray, t: int, k: int) -> None:
        s = self.params.size
        L = float(self.body_len[k])
        cx, cy = self.centre[t, k]
        th = float(self.heading[t, k])
        ct, st = math.cos(th), math.sin(th)
        self._draw_tail(img, t, k, L, ct, st)
        r = int(L * 0.62) + 3  # body, head, ears and shadow lie within this radius
        x0, x1 = max(int(cx) - r, 1), min(int(cx) + r + 2, s)
        y0, y1 = max(int(cy) - r, 1), min(int(cy) + r + 2, s)
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
        ax = (dx * (ct / L) + dy * (st / L))  # along the body, in body lengths (+ towards the snout)
        ay = (dy * (ct / L) - dx * (st / L))
        ay2 = ay * ay
        # Body and head: soft-edged ellipses (edge width about one pixel).
        qb = np.sqrt((ax - BODY_C) ** 2 * (1.0 / BODY_A ** 2) + ay2 * (1.0 / BODY_B ** 2))
        qh = np.sqrt((ax - HEAD_C) ** 2 * (1.0 / HEAD_A ** 2) + ay2 * (1.0 / HEAD_B ** 2))
        body = np.maximum((1.0 - qb) * (BODY_B * L), (1.0 - qh) * (HEAD_B * L))
        body += 0.5
        np.clip(body, 0.0, 1.0, out=body)
        # A soft shadow one pixel down-right (light from the upper left), then the fur on top.
        img[y0 + 1:y1 + 1, x0 + 1:x1 + 1] *= (1.0 - 0.25 * body[: s - y0 - 1, : s - x0 - 1])[:, :, None]
        patch = img[y0:y1, x0:x1]
        spine = np.clip(1.0 - np.sqrt(ay2) * (1.0 / BODY_B), 0.0, 1.0)
        fur = FUR + (18.0 * spine * spine)[:, :, None]
        patch += body[:, :, None] * (fur - patch)
        aye = np.sqrt(ay2) - EAR_AY
        ear = EAR_R * L + 0.5 - L * np.sqrt((ax - EAR_AX) ** 2 + aye * aye)
        np.clip(ear, 0.0, 1.0, out=ear)
        patch += ear[:, :, None] * (EAR - patch)
        if t == 0:  # the paint tag on the back, in the identity colour
            tag = np.clip(2.2 + 0.5 - L * np.sqrt((ax + 0.08) ** 2 + ay2), 0.0, 1.0)
            patch += tag[:, :, None] * (np.asarray(ID_COLORS[k], np.float32) - patch)

    def _draw_tail(self, img, t, k, L, ct, st) -> None:
        bx, by = self.back[t, k]
        amp, ph = self._tail_amp[t, k], self._tail_phase[t, k]
        along = _TAIL_S * (-TAIL_LEN * L)
        side = np.sin(_TAIL_S * (1.3 * np.pi) + ph) * _TAIL_S * amp
        xs = np.rint(bx + along * ct - side * st).astype(np.intp)
        ys = np.rint(by + along * st + side * ct).astype(np.intp)
        s = img.shape[0]
        np.clip(xs, 0, s - 1, out=xs)  # (the arena wall keeps tails inside anyway)
        np.clip(ys, 0, s - 1, out=ys)
        img[ys, xs] = 0.3 * img[ys, xs] + 0.7 * TAIL

    def draw_overlays(self, canvas: np.ndarray, mapper) -> None:
        # Two layers, each cached by the markers it shows: the previous frame's markers, faint
        # (blended with this frame's base image, which is what lies under them), then this frame's
        # markers on top. A cached layer is written back with one fancy assignment.
        n, t = self.n_animals, self.t
        if t > 0:
            self._layer(canvas, mapper, ("prev", t, self.ann[2 * n * (t - 1):2 * n * t]))
        self._layer(canvas, mapper, ("this", self.ann[2 * n * t:2 * n * (t + 1)]))

    def _layer(self, canvas: np.ndarray, mapper, key: tuple) -> None:
        key = key + canvas.shape[:2]
        hit = self._overlay_cache.get(key)
        if hit is None:
            faint = key[1] if key[0] == "prev" else -1
            parts = [self._marker_pixels(canvas, mapper, faint, i, pt)
                     for i, pt in enumerate(key[-3]) if pt is not None]
            hit = tuple(np.concatenate(a) for a in zip(*parts)) if parts else ()
            self._overlay_cache[key] = hit
        if hit:
            canvas[hit[0], hit[1]] = hit[2]

    def _marker_pixels(self, canvas: np.ndarray, mapper, faint: int, i: int, pt):
        """(ys, xs, colours) of marker slot i at pt; faint: blended over frame ``faint``'s image."""
        key = (faint, i, pt, canvas.shape[:2])
        hit = self._overlay_cache.get(key)
        if hit is not None:
            return hit
        r = max(2, round(2 * mapper.pixel_size))
        h, w = canvas.shape[:2]
        x, y = mapper.to_canvas_px(*pt)
        oy, ox = mark_offsets(MARKER_SHAPES[i & 1], r)
        ys, xs = oy + y, ox + x
        keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        ys, xs = ys[keep], xs[keep]
        col = np.asarray(ID_COLORS[i >> 1], np.float32)
        if faint >= 0:  # the canvas holds frame `faint`'s base image under the overlays
            vals = (canvas[ys, xs] * (1.0 - PREV_ALPHA) + col * PREV_ALPHA + 0.5).astype(np.uint8)
        else:
            vals = np.empty((len(ys), 3), np.uint8)
            vals[:] = ID_COLORS[i >> 1]
        hit = self._overlay_cache[key] = (ys, xs, vals)
        return hit

    def status(self) -> tuple[str, ...]:
        n, t = self.n_animals, self.t
        here = self.memo(f"here{t}",
                         lambda: sum(a is not None for a in self.ann[2 * n * t:2 * n * (t + 1)]))
        total = self.memo("total", lambda: sum(a is not None for a in self.ann))
        return (f"FRAME {t + 1}/{self.n_frames}  {ANIMAL_LABELS[self.animal]} {MARKERS[self.marker]}",
                f"{n} ANIMALS  HERE {here}/{2 * n}  ALL {total}/{len(self.ann)}")

    def selected(self) -> tuple[str, ...]:
        return (ANIMAL_LABELS[self.animal], MARKERS[self.marker])

    # -- latents and score ----------------------------------------------------------------------
    def position(self) -> float:
        return self.t / max(1, self.n_frames - 1)

    def _ok(self, i: int, pt) -> bool:
        g = self._gt[i]
        return math.hypot(pt[0] - g[0], pt[1] - g[1]) <= MATCH_PX

    def _counts(self) -> tuple[int, int]:
        return self.memo("counts", self._compute_counts)

    def _compute_counts(self) -> tuple[int, int]:
        """(matched, wrong) over all slots."""
        matched = wrong = 0
        for i, pt in enumerate(self.ann):
            if pt is not None:
                if self._ok(i, pt):
                    matched += 1
                else:
                    wrong += 1
        return matched, wrong

    def n_wrong(self) -> int:
        return self._counts()[1]

    def score(self) -> tuple[float, bool]:
        rate = self._counts()[0] / len(self.ann)
        return rate, rate >= SUCCESS_SCORE


def _seg_dist(p0, p1, q0, q1) -> float:
    """Shortest distance between segments p0-p1 and q0-q1 in 2D (0 where they cross)."""
    def pt_seg(pt, a, b):
        ab = (b[0] - a[0], b[1] - a[1])
        den = ab[0] * ab[0] + ab[1] * ab[1]
        s = (pt[0] - a[0]) * ab[0] + (pt[1] - a[1]) * ab[1]
        s = 0.0 if den == 0 else max(0.0, min(1.0, s / den))
        return math.hypot(pt[0] - a[0] - s * ab[0], pt[1] - a[1] - s * ab[1])

    if _segments_cross(p0, p1, q0, q1):
        return 0.0
    return min(pt_seg(p0, q0, q1), pt_seg(p1, q0, q1), pt_seg(q0, p0, p1), pt_seg(q1, p0, p1))


def _segments_cross(p0, p1, q0, q1) -> bool:
    def orient(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = orient(q0, q1, p0), orient(q0, q1, p1)
    d3, d4 = orient(p0, p1, q0), orient(p0, p1, q1)
    return (d1 > 0) != (d2 > 0) and (d3 > 0) != (d4 > 0)


class AnimalTrackingAnnotator(Annotator, task=AnimalBehavioralTracking):
    """Follows each animal by proximity from the tags of frame 1; swaps at close passes, flips."""

    persona: TrackPersona
    task: AnimalBehavioralTracking

    def script(self) -> Iterator[Intent]:
        t, p = self.task, self.persona
        T, N = t.n_frames, t.n_animals
        self.follow = list(range(N))  # which true animal each identity is following
        if self.chance(p.survey_rate):
            yield from self._goto(T - 1, "survey", -1)
            yield from self._goto(0, "survey", -1)
        if p.order == "animal":
            for k in range(N):
                yield from self._goto(0, "navigate", k)
                for f in range(T):
                    yield from self._goto(f, "navigate", k)
                    yield from self._instance(f, k)
        else:
            for f in range(T):
                yield from self._goto(f, "navigate", -1)
                if p.grouping == "animal":
                    for k in range(N):
                        yield from self._instance(f, k)
                else:
                    yield from self._frame_by_marker(f)
        if self.chance(p.verify_rate):
            far = 0 if t.t >= T // 2 else T - 1
            yield from self._goto(far, "verify", -1)
        yield self.press("DONE", "finish")

    # -- helpers --------------------------------------------------------------------------------
    def _goto(self, f: int, phase: str, k: int, correction: bool = False) -> Iterator[Intent]:
        while self.task.t != f:
            yield self.press("NEXT" if f > self.task.t else "PREV", phase, k, correction)

    def _selects(self, k: int, m: int) -> list[str]:
        t = self.task
        need = []
        if t.animal != k:
            need.append(ANIMAL_LABELS[k])
        if t.marker != m:
            need.append(MARKERS[m])
        return need

    def _put(self, f: int, k: int, m: int, pt, correction: bool = False) -> Iterator[Intent]:
        """Select animal k and marker m (as needed) and place at pt; may forget the last select."""
        p = self.persona
        phase = "correct" if correction else "select"
        need = self._selects(k, m)
        if need and not correction and self.chance(p.forget_rate):
            for label in need[:-1]:
                yield self.press(label, phase, k, correction)
            yield self.place(*pt, "place", k)  # with a stale selection: the wrong slot
            if self.chance(p.notice_rate):
                yield self.press("UNDO", "correct", k, True)
                yield self.press(need[-1], "correct", k, True)
                yield self.place(*pt, "correct", k, True)
            return
        for label in need:
            yield self.press(label, phase, k, correction)
        yield self.place(*pt, "correct" if correction else "place", k, correction)

    def _points(self, f: int, g: int):
        t = self.task
        return t.gt_point(f, g, 0), t.gt_point(f, g, 1)

    def _instance(self, f: int, k: int) -> Iterator[Intent]:
        """FRONT and BACK of identity k in frame f, with this persona's mistakes and checks."""
        t, p = self.task, self.persona
        g = self.follow[k]
        j, dist = t.nearest_other(f, g)
        close = f > 0 and dist < p.close_dist
        if close and self.chance(p.inspect_rate):
            yield self.press("PREV", "inspect", k)
            yield self.press("NEXT", "inspect", k)
        swap = close and self.chance(p.swap_rate)
        flip = not swap and self.chance(p.flip_rate)
        front, back = self._points(f, j if swap else g)
        if flip:
            front, back = back, front
        yield from self._put(f, k, 0, front)
        yield from self._put(f, k, 1, back)
        if not (swap or flip):
            return
        if not self.chance(p.notice_rate):
            if swap:
                self.follow[k] = j  # carries on with the wrong animal
            return
        late = p.order == "animal" and f < t.n_frames - 1 and self.chance(p.late_rate)
        if late:  # sees it on the next frame: its faint markers sit on the wrong animal
            yield self.press("NEXT", "navigate", k)
            yield self.press("PREV", "correct", k, True)
        yield self.press("UNDO", "correct", k, True)
        yield self.press("UNDO", "correct", k, True)
        front, back = self._points(f, g)
        yield from self._put(f, k, 0, front, correction=True)
        yield from self._put(f, k, 1, back, correction=True)

    def _frame_by_marker(self, f: int) -> Iterator[Intent]:
        """FRONT for every animal, then BACK for every animal (the hasty persona's grouping)."""
        t, p = self.task, self.persona
        N = t.n_animals
        for m in (0, 1):
            for k in range(N):
                g = self.follow[k]
                j, dist = t.nearest_other(f, g)
                close = f > 0 and dist < p.close_dist
                swap = close and self.chance(p.swap_rate)
                flip = not swap and self.chance(p.flip_rate)
                pt = t.gt_point(f, j if swap else g, 1 - m if flip else m)
                yield from self._put(f, k, m, pt)
                if (swap or flip):
                    if self.chance(p.notice_rate):
                        yield self.press("UNDO", "correct", k, True)
                        yield from self._put(f, k, m, t.gt_point(f, g, m), correction=True)
                    elif swap and m == 1:
                        self.follow[k] = j
