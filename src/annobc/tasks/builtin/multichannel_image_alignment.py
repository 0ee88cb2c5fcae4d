"""multichannel_image_alignment: align channel B to channel A with landmark pairs.

Analogue: landmark registration of imaging channels or rounds (e.g. two rounds of cyclic
immunofluorescence of one tissue section, registered on fiducial beads and tissue corners, as in
BigWarp or Fiji's landmark registration).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Callable, ClassVar

import numpy as np

from annobc.gui.raster import mark_offsets, paint
from annobc.gui.font import GlyphAtlas
from annobc.tasks.textures import camera_noise
from annobc.tasks.annotator import Annotator, Intent
from annobc.tasks.base import Button, Effect, NO_EFFECT, Persona, Task

TISSUE_BANK = 384  # side of the fixed tissue texture that every scene crops from
NOISE_BANK = 512
MISMATCH_TOL = 4.0  # a pair is mismatched when B is this far (px) from where A's partner truly is
SINGLE_TOL = 3.0  # an unpaired landmark this close to a one-channel feature can never be paired
# The annotator takes an A landmark this close to a shared feature as marking it: its own clicks
# land within place_max + half a screen pixel's diagonal (1.9 px), and a partner placed on the
# feature then stays within MISMATCH_TOL of where the landmark's partner truly is.
A_TOL = 2.0
SUCCESS_ERR = 1.5  # registration error (px) at or under which the alignment succeeds
ZERO_SCORE_ERR = 10.0  # score = max(0, 1 - err / 10)
A_COLOR = (255, 225, 40)  # channel-A landmarks (yellow)
B_COLOR = (40, 235, 255)  # channel-B landmarks (cyan)
VIEW_LABEL = {"A": "CH-A", "B": "CH-B", "O": "OVERLAY"}
VIEW_POSITION = {"A": 0.0, "O": 0.5, "B": 1.0}
BUTTON_VIEW = {label: view for view, label in VIEW_LABEL.items()}


# -- fixed texture banks (built once per process, shared by every episode) ------------------------
def _upsample(coarse: np.ndarray, n: int) -> np.ndarray:
    """Bilinear upsampling of a small square grid to n x n (smooth low-frequency fields)."""
    k = coarse.shape[0]
    t = np.linspace(0.0, k - 1.0, n)
    i0 = np.clip(np.floor(t).astype(np.intp), 0, k - 2)
    f = (t - i0).astype(np.float32)
    rows = coarse[i0] * (1 - f)[:, None] + coarse[i0 + 1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]


@lru_cache(maxsize=1)
def tissue_bank() -> np.ndarray:
    """(2, N, N) float32: the same tissue seen in two stains.

    Layer 0 (channel A) is a nuclear stain: bright textured nuclei, faint cytoplasm. Layer 1
    (channel B) is a membrane/cytoplasm stain: cell outlines and cytoplasm, dimmer nuclei. Cells
    are a jittered-grid Voronoi tiling with elliptical nuclei; stroma/lumen gaps come from a
    low-frequency mask, so the overlay shows large-scale structure as well as cells.
    """
    rng = np.random.default_rng(20261205)
    n, sp = TISSUE_BANK, 9.0
    g = int(np.ceil(n / sp)) + 3
    gy, gx = np.mgrid[0:g, 0:g].astype(np.float32)
    sy = (gy - 1 + 0.5) * sp + rng.uniform(-0.33, 0.33, (g, g)).astype(np.float32) * sp
    sx = (gx - 1 + 0.5) * sp + rng.uniform(-0.33, 0.33, (g, g)).astype(np.float32) * sp
    rx = rng.uniform(2.6, 4.0, (g, g))
    ry = rx * rng.uniform(0.6, 1.0, (g, g))
    ang = rng.uniform(0, np.pi, (g, g))
    bright = rng.uniform(0.55, 1.0, (g, g)) * (rng.random((g, g)) > 0.12)  # some cut above the nucleus
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    ci = (yy // sp).astype(np.intp) + 1
    cj = (xx // sp).astype(np.intp) + 1
    d1 = np.full((n, n), np.inf, np.float32)
    d2 = d1.copy()
    bi, bj = ci.copy(), cj.copy()
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            a, b = ci + di, cj + dj
            d = np.hypot(yy - sy[a, b], xx - sx[a, b])
            closer = d < d1
            d2 = np.where(closer, d1, np.minimum(d2, d))
            d1 = np.where(closer, d, d1)
            bi = np.where(closer, a, bi)
            bj = np.where(closer, b, bj)
    dy, dx = yy - sy[bi, bj], xx - sx[bi, bj]
    ca, sa = np.cos(ang[bi, bj]), np.sin(ang[bi, bj])
    u, v = dx * ca + dy * sa, -dx * sa + dy * ca
    r = np.sqrt((u / rx[bi, bj]) ** 2 + (v / ry[bi, bj]) ** 2)
    fine = rng.normal(0, 1, (n + 1, n + 1)).astype(np.float32)
    fine = 0.25 * (fine[:-1, :-1] + fine[1:, 1:] + fine[:-1, 1:] + fine[1:, :-1])
    chromatin = np.clip(0.78 + 0.3 * fine, 0.4, 1.2)
    nuc = bright[bi, bj] / (1.0 + np.exp((r - 1.0) * 7.0)) * chromatin
    membrane = np.exp(-(((d2 - d1) / 1.3) ** 2))
    lf = _upsample(rng.uniform(0, 1, (9, 9)).astype(np.float32), n)
    mask = np.clip((lf - 0.18) * 4.0, 0.0, 1.0)
    mod = 0.75 + 0.5 * _upsample(rng.uniform(0, 1, (13, 13)).astype(np.float32), n)
    cyto = (0.3 + 0.7 * membrane) * mod * np.clip(0.85 + 0.25 * fine, 0.5, 1.2)
    nuc, cyto = nuc * mask, cyto * mask
    bank = np.stack([0.6 * nuc + 0.12 * cyto, 0.28 * nuc + 0.5 * cyto]).astype(np.float32)
    return bank


def noise_bank() -> np.ndarray:
    """A fixed field of unit-variance, slightly correlated noise (camera-like)."""
    return camera_noise(NOISE_BANK, 20261206)


def _lut(kind: str) -> np.ndarray:
    v = np.arange(256, dtype=np.float32) / 255.0
    hi = np.clip((v - 0.62) / 0.38, 0.0, 1.0) * 0.9  # highlights saturate towards white
    if kind == "green":
        rgb = np.stack([hi, v, hi], 1)
    else:  # magenta
        rgb = np.stack([v, hi, v * 0.95], 1)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


LUT_A, LUT_B = _lut("green"), _lut("magenta")


@lru_cache(maxsize=4)
def _atlas(scale: int) -> GlyphAtlas:
    return GlyphAtlas(scale)


@lru_cache(maxsize=256)
def _text_stamp(text: str, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets (dy, dx) of a text label from its top-left corner."""
    mask = _atlas(scale).render(text)
    return np.nonzero(mask[: mask.shape[0] - scale, : mask.shape[1] - scale])


def _paint(img: np.ndarray, items: list, color, alpha: float = 1.0) -> None:
    """Paint stamps placed [(ys, xs), ...] in one colour, clipped to the image."""
    if not items:
        return
    paint(img, np.concatenate([q[0] for q in items]), np.concatenate([q[1] for q in items]), color, alpha)


def _bilinear(img: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    h, w = img.shape
    x0 = np.clip(np.floor(xs).astype(np.intp), 0, w - 2)
    y0 = np.clip(np.floor(ys).astype(np.intp), 0, h - 2)
    fx = np.clip(xs - x0, 0.0, 1.0).astype(np.float32)
    fy = np.clip(ys - y0, 0.0, 1.0).astype(np.float32)
    top = img[y0, x0] * (1 - fx) + img[y0, x0 + 1] * fx
    bot = img[y0 + 1, x0] * (1 - fx) + img[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bot * fy


def _rot(th: float) -> np.ndarray:
    c, s = math.cos(th), math.sin(th)
    return np.array([[c, -s], [s, c]])


@dataclass(frozen=True)
class Params:
    size: int = 112  # canvas data grid side, pixels
    shift_px: tuple[float, float] = (6.0, 12.0)  # magnitude of B's shift against A (any direction)
    # B also rotated by up to this many degrees (5 at higher difficulty); above 0 the estimate is
    # rigid (rotation + translation) instead of a translation.
    max_rotation_deg: float = 0.0
    n_shared: tuple[int, int] = (8, 12)  # landmarks visible in both channels
    n_only_a: tuple[int, int] = (2, 4)  # landmarks visible in channel A only
    n_only_b: tuple[int, int] = (2, 4)  # landmarks visible in channel B only
    corner_fraction: float = 0.3  # fraction of landmarks that are tissue corners (rest: puncta)
    noise_a: float = 0.035  # noise standard deviation, fraction of full scale
    noise_b: float = 0.05
    min_separation: float = 9.0  # minimum distance between landmarks, pixels
    # Landmark pairs the protocol asks for, shown as ``PAIRS <n>/<N>`` (one more when rotation is
    # fitted, at most the number of shared landmarks).
    n_pairs: int = 5


@dataclass(frozen=True)
class AlignPersona(Persona):
    notice_rate: float = 0.97  # a mismatched pair is noticed in the overlay
    # Landmark pairs placed: None, the number the status asks for (``PAIRS n/N``); a range, a
    # number drawn per episode (a persona's own habit, not shown on screen).
    n_pairs: tuple[int, int] | None = None
    order: str = "spread"  # "spread": farthest-first over the field; "scan": reading order
    # The corner the "spread" order starts from (0 top left, 1 top right, 2 bottom left, 3 bottom
    # right); -1: one drawn per episode.
    start_corner: int = 0
    survey_blinks: tuple[int, int] = (2, 2)  # A/B toggles before starting (a fixed count)
    # A/B toggles while looking for a partner: one, then another at blink_continue each (up to
    # max_blinks), and one more at crowded_blink_rate where another feature of channel B lies
    # close to the partner (visible). The default toggles once, twice where crowded.
    blink_continue: float = 0.0
    max_blinks: int = 3
    crowded_blink_rate: float = 1.0
    flick_rate: float = 0.0  # after a pair's overlay check, flicks CH-B/OVERLAY once more
    confirm_rate: float = 0.0  # on seeing misalignment, flicks once more before UNDO
    # A/B toggles looking in B for the partner of a landmark that has none (then it is undone).
    absent_looks: tuple[int, int] = (1, 1)
    # Before DONE, every pair once more in a channel and the overlay (2 clicks a pair); without
    # it, DONE comes in the overlay right after the last pair's check, where ``PAIRS N/N`` shows.
    final_check: bool = False
    late_notice_rate: float = 0.8  # a mismatch missed at first is caught before DONE
    mismatch_rate: float = 0.07  # B partner put on the wrong feature
    single_rate: float = 0.045  # A landmark put on a feature that channel B does not show

    MISTAKE_FIELDS: ClassVar[tuple[str, ...]] = Persona.MISTAKE_FIELDS + ("mismatch_rate",
                                                                          "single_rate")
    NOTICE_FIELDS: ClassVar[tuple[str, ...]] = Persona.NOTICE_FIELDS + ("late_notice_rate",)


@dataclass
class Feature:
    kind: str  # "punctum" or "corner"
    channels: str  # "AB", "A" or "B"
    x: float  # position in channel A (tissue) coordinates
    y: float
    bx: float  # where it appears in channel B (true transform)
    by: float
    amp_a: float
    amp_b: float
    sigma: float  # punctum size, or corner arm half-width
    arm: float  # corner arm length
    phi: float  # corner first arm direction
    opening: float  # corner angle between arms


class MultichannelImageAlignment(Task):
    """Align channel B to channel A by placing corresponding landmark pairs.

    ## Description
    Two channels of one tissue section: channel A (nuclear stain, green) and channel B
    (membrane/cytoplasm stain, magenta) with its own noise. B is A shifted by 6-12 pixels in a
    random direction (and rotated at higher difficulty). Salient landmarks are bright puncta
    (fiducial beads) and tissue corners; most show in both channels, a few in one channel only.
    The annotator places a landmark in A, its partner in B, and so on; the pairs define a
    least-squares transform, and the overlay shows A with B warped by it.

    ## Action Space
    A left click at a screen pixel. Buttons: ``CH-A``, ``CH-B``, ``OVERLAY`` (view: which image the
    canvas shows; the shown one is highlighted), ``UNDO``, ``DONE``. A canvas click adds a landmark
    in the shown channel (nothing in the overlay); landmarks pair in order: A1-B1, A2-B2, ...

    ## Observation Space
    The rendered screen: the shown channel with its landmarks as numbered crosses (A yellow, B
    cyan) and the other channel's landmarks as faint rings (the A landmark awaiting its partner as
    a bright ring); the overlay (A green, B magenta warped by the current estimate, white where
    they agree) with A landmarks as crosses and B landmarks mapped back by the estimate as x's.
    Status: ``VIEW <CH-A|CH-B|OVERLAY>  PAIRS <n>/<N>  NEXT <A|B><k>`` (N: the pairs asked for) and
    ``A <n> B <n>  DX <dx> DY <dy>`` (the estimated shift; ``R <deg>`` when rotation is on).

    ## Rewards
    Zero until the episode ends, then ``max(0, 1 - err / 10)``, where err is the registration
    error: the mean distance, over a grid covering the canvas, between where the estimated and the
    true transform send each point (0 without a complete pair).

    ## Episode End
    DONE terminates; the env's step cap truncates. Success: registration error <= 1.5 px.

    ## Arguments
    See :class:`Params`: shift range, maximum rotation, numbers of shared and one-channel
    landmarks, share of corners, noise of each channel, landmark separation.

    ## Version History
    - v0: initial version.
    - v1: the annotator is a policy of the state (the same expert labels any state and finishes
      any episode); its decisions are keyed by occasion, so the demonstrations changed.
    - v2: the status shows the pairs asked for, ``PAIRS <n>/<N>`` (Params ``n_pairs``, 5; one
      more with rotation); the default annotator decides on what the screen shows: it places N
      pairs (not 4 or 5 drawn at random), starts from the top-left corner, surveys with two A/B
      toggle, looks for a partner with one A/B toggle (two where another channel-B feature lies
      close to it), makes no extra CH-B/OVERLAY flicks (coins) before a check or an UNDO, looks
      once for a missing partner, and presses DONE in the overlay right after the last pair's
      check, where ``PAIRS N/N`` shows (a mismatch missed before gets its late look there),
      instead of checking every pair again (10 clicks for 5 pairs).
      The DONE button is drawn lit while the status shows ``PAIRS N/N`` (``complete()``).
    """

    task_id = "multichannel_image_alignment"
    version = 2
    instruction = "Place matching landmark pairs in channels A and B until the overlay is aligned."
    Params = Params
    buttons = (Button("CH-A", "view"), Button("CH-B", "view"), Button("OVERLAY", "view"),
               Button("UNDO", "undo"), Button("DONE", "done"))
    # A fresh mistake: a mismatch is seen in the overlay, confirmed and undone (OVERLAY, CH-B,
    # OVERLAY, UNDO); a landmark without a partner is looked for in B first (CH-B, two A/B
    # toggles, CH-A, UNDO).
    correction_length = 7
    personas = {
        "default": AlignPersona(),
        "thorough": AlignPersona(n_pairs=(6, 7), order="scan", survey_blinks=(3, 4),
                                 blink_continue=0.5, crowded_blink_rate=0.5, flick_rate=0.7,
                                 confirm_rate=0.5, absent_looks=(1, 2), final_check=True,
                                 start_corner=-1, mismatch_rate=0.04, single_rate=0.03,
                                 notice_rate=0.99),
        "hasty": AlignPersona(n_pairs=(4, 4), survey_blinks=(2, 2), blink_continue=0.15,
                              max_blinks=2, crowded_blink_rate=0.5, flick_rate=0.0,
                              confirm_rate=0.0, absent_looks=(1, 2), final_check=True,
                              start_corner=-1, mismatch_rate=0.12, single_rate=0.08,
                              notice_rate=0.92, late_notice_rate=0.5, place_sigma=0.55),
    }

    # -- scene ---------------------------------------------------------------------------------
    def setup(self, rng: np.random.Generator) -> None:
        p = self.params
        s = p.size
        self.c = (s - 1) / 2.0
        mag = float(rng.uniform(*p.shift_px))
        ang = float(rng.uniform(0, 2 * np.pi))
        self.shift = (mag * math.cos(ang), mag * math.sin(ang))
        self.theta = math.radians(float(rng.uniform(-p.max_rotation_deg, p.max_rotation_deg))) \
            if p.max_rotation_deg > 0 else 0.0
        self.rigid = p.max_rotation_deg > 0
        # True transform as p -> R p + t (A coordinates -> B coordinates).
        self.R_true = _rot(self.theta)
        c = np.array([self.c, self.c])
        self.t_true = c + np.array(self.shift) - self.R_true @ c
        # Tissue crop (with a margin for B's shift and rotation), orientation, noise offsets.
        self.margin = int(math.ceil(p.shift_px[1] + s * 0.71 * math.sin(math.radians(p.max_rotation_deg)) + 3))
        crop = s + 2 * self.margin
        if crop > TISSUE_BANK:
            raise ValueError(f"size {s} with shift {p.shift_px[1]} does not fit the tissue bank")
        self._crop_at = (int(rng.integers(0, TISSUE_BANK - crop + 1)),
                         int(rng.integers(0, TISSUE_BANK - crop + 1)), int(rng.integers(0, 8)))
        self._noise_at = rng.integers(0, NOISE_BANK - s, (2, 2))
        self.features = self._sample_features(rng)
        self.shared = [i for i, f in enumerate(self.features) if f.channels == "AB"]
        # The pairs the protocol asks for, shown in the status.
        self.n_target = min(len(self.shared), p.n_pairs + int(self.rigid))
        self._intensity_cache: dict = {}
        self._mark_px: dict = {}  # (x, y, stamp) -> that stamp's pixels there, this episode's marks
        # GUI state: the shown view ("A", "B" or overlay "O"); landmarks (A points, B points).
        self.view = "A"
        self.ann: tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]] = ((), ())
        grid = np.arange(2.0, s, 4.0)
        gx, gy = np.meshgrid(grid, grid)
        self._grid = np.stack([gx.ravel(), gy.ravel()], 1)  # where the registration error is measured

    def to_b(self, x: float, y: float) -> tuple[float, float]:
        q = self.R_true @ np.array([x, y]) + self.t_true
        return float(q[0]), float(q[1])

    def to_a(self, x: float, y: float) -> tuple[float, float]:
        q = self.R_true.T @ (np.array([x, y]) - self.t_true)
        return float(q[0]), float(q[1])

    def _sample_features(self, rng: np.random.Generator) -> list[Feature]:
        p, s, m = self.params, self.params.size, 6.0
        counts = [("AB", int(rng.integers(p.n_shared[0], p.n_shared[1] + 1))),
                  ("A", int(rng.integers(p.n_only_a[0], p.n_only_a[1] + 1))),
                  ("B", int(rng.integers(p.n_only_b[0], p.n_only_b[1] + 1)))]
        feats: list[Feature] = []
        pts: list[tuple[float, float]] = []

        def inside(x, y):
            return m <= x <= s - 1 - m and m <= y <= s - 1 - m

        for channels, n in counts:
            made, tries = 0, 0
            while made < n and tries < 4000:
                tries += 1
                if channels == "B":  # sampled where B shows it
                    bx, by = rng.uniform(m, s - 1 - m, 2)
                    x, y = self.to_a(bx, by)
                else:
                    x, y = rng.uniform(m, s - 1 - m, 2)
                    bx, by = self.to_b(x, y)
                if channels == "AB" and not inside(bx, by):
                    continue
                if any(math.hypot(x - a, y - b) < p.min_separation for a, b in pts):
                    continue
                corner = rng.random() < p.corner_fraction
                amp = float(rng.uniform(0.75, 1.05))
                feats.append(Feature(
                    kind="corner" if corner else "punctum", channels=channels,
                    x=float(x), y=float(y), bx=float(bx), by=float(by),
                    amp_a=amp * float(rng.uniform(0.85, 1.15)), amp_b=amp * float(rng.uniform(0.85, 1.15)),
                    sigma=float(rng.uniform(0.65, 0.85) if corner else rng.uniform(0.9, 1.3)),
                    arm=float(rng.uniform(5.0, 7.5)), phi=float(rng.uniform(0, 2 * np.pi)),
                    opening=float(rng.uniform(np.radians(70), np.radians(115)))))
                pts.append((float(x), float(y)))
                made += 1
        return feats

    @property
    def data_shape(self) -> tuple[int, int]:
        return (self.params.size, self.params.size)

    # -- GUI state machine ----------------------------------------------------------------------
    def press_button(self, label: str) -> Effect:
        if label == "CH-A":
            self.view = "A"
        elif label == "CH-B":
            self.view = "B"
        elif label == "OVERLAY":
            self.view = "O"
        return NO_EFFECT

    def click_canvas(self, u: float, v: float) -> Effect:
        if self.view == "O":
            return NO_EFFECT  # the overlay is for checking, landmarks go on a channel
        self.checkpoint()
        before = self.n_wrong()
        a, b = self.ann
        if self.view == "A":
            self.ann = (a + ((float(u), float(v)),), b)
        else:
            self.ann = (a, b + ((float(u), float(v)),))
        return Effect(annotated=True, wrong=self.n_wrong() > before)

    def next_expected(self) -> str:
        na, nb = len(self.ann[0]), len(self.ann[1])
        return f"B{nb + 1}" if na > nb else f"A{na + 1}"

    # -- estimate, matching, score --------------------------------------------------------------
    def estimate(self) -> tuple[float, np.ndarray] | None:
        """(angle, t) of the least-squares transform p -> R p + t from the complete pairs."""
        return self.memo("estimate", self._compute_estimate)

    def _compute_estimate(self):
        a, b = self.ann
        n = min(len(a), len(b))
        if n == 0:
            return None
        A, B = np.asarray(a[:n], float), np.asarray(b[:n], float)
        ca, cb = A.mean(0), B.mean(0)
        th = 0.0
        if self.rigid and n >= 2:
            A0, B0 = A - ca, B - cb
            th = math.atan2(float((A0[:, 0] * B0[:, 1] - A0[:, 1] * B0[:, 0]).sum()),
                            float((A0 * B0).sum()))
        return th, cb - _rot(th) @ ca

    def registration_error(self) -> float:
        """Mean displacement error (px) over the canvas of the estimate against the truth."""
        return self.memo("error", self._compute_error)

    def _compute_error(self) -> float:
        est = self.estimate()
        if est is None:
            return math.inf
        th, t = est
        d = self._grid @ (_rot(th) - self.R_true).T + (t - self.t_true)
        return float(np.hypot(d[:, 0], d[:, 1]).mean())

    def pair_residuals(self) -> list[float]:
        """For each complete pair, the distance of B from where A's partner truly is."""
        a, b = self.ann
        return [math.hypot(bx - tx, by - ty)
                for (ax, ay), (bx, by) in zip(a, b) for tx, ty in [self.to_b(ax, ay)]]

    def n_wrong(self) -> int:
        return self.memo("wrong", self._compute_wrong)

    def _compute_wrong(self) -> int:
        a, b = self.ann
        n = min(len(a), len(b))
        wrong = sum(r > MISMATCH_TOL for r in self.pair_residuals())
        # Unpaired landmarks on a feature the other channel does not show can never pair right.
        for (x, y) in a[n:]:
            wrong += any(f.channels == "A" and math.hypot(x - f.x, y - f.y) <= SINGLE_TOL
                         for f in self.features)
        for (x, y) in b[n:]:
            wrong += any(f.channels == "B" and math.hypot(x - f.bx, y - f.by) <= SINGLE_TOL
                         for f in self.features)
        return int(wrong)

    def score(self) -> tuple[float, bool]:
        err = self.registration_error()
        if not math.isfinite(err):
            return 0.0, False
        return max(0.0, 1.0 - err / ZERO_SCORE_ERR), err <= SUCCESS_ERR

    # -- rendering ------------------------------------------------------------------------------
    def _overlay_params(self) -> tuple:
        est = self.estimate()
        th, t = (0.0, np.zeros(2)) if est is None else est
        if not self.rigid:
            return (int(round(t[0])), int(round(t[1])))
        return (int(round(math.degrees(th) * 10)), int(round(t[0] * 2)), int(round(t[1] * 2)))

    def view_key(self):
        if self.view == "O":
            return ("O",) + self._overlay_params()
        return self.view

    def canvas_key(self):
        return (self.view_key(), self.ann)

    def render_view(self, key) -> np.ndarray:
        # np.take along the table's first axis: the pixels LUT[intensity] gives, several times faster.
        if key == "A":
            return np.take(LUT_A, self._intensity("A"), axis=0)
        if key == "B":
            return np.take(LUT_B, self._intensity("B"), axis=0)
        return self._render_overlay(key[1:])

    def _tissue(self, layer: int) -> np.ndarray:
        """This scene's crop of one stain of the tissue bank (oriented), with the margin."""
        oy, ox, k = self._crop_at
        n = self.params.size + 2 * self.margin
        crop = tissue_bank()[layer, oy:oy + n, ox:ox + n]
        crop = np.rot90(crop, k % 4)
        return crop[:, ::-1] if k >= 4 else crop

    def _intensity(self, ch: str) -> np.ndarray:
        """The channel's image on the data grid as uint8 intensities (cached per channel)."""
        key = "i" + ch
        out = self._intensity_cache.get(key)
        if out is not None:
            return out
        p, s, m = self.params, self.params.size, self.margin
        if ch == "A":
            img = np.array(self._tissue(0)[m:m + s, m:m + s], np.float32)
        elif self.theta == 0.0:
            # B(q) = tissue(q - t): a sub-pixel shift, bilinear from four shifted slices.
            tissue = self._tissue(1)
            tx, ty = self.shift
            ix, iy = math.floor(tx), math.floor(ty)
            fx, fy = tx - ix, ty - iy
            y0, x0 = m - iy - 1, m - ix - 1
            def sl(dy, dx):
                return tissue[y0 + dy:y0 + dy + s, x0 + dx:x0 + dx + s]
            img = (sl(0, 0) * (fx * fy) + sl(0, 1) * ((1 - fx) * fy)
                   + sl(1, 0) * (fx * (1 - fy)) + sl(1, 1) * ((1 - fx) * (1 - fy))).astype(np.float32)
        else:  # B shows the tissue at T^-1(q) for each of its pixels q
            tissue = self._tissue(1)
            ys, xs = np.mgrid[0:s, 0:s].astype(np.float64)
            q = np.stack([xs.ravel(), ys.ravel()], 1) - self.t_true
            src = q @ self.R_true  # R^T applied to row vectors
            img = _bilinear(tissue, (src[:, 0] + m).reshape(s, s), (src[:, 1] + m).reshape(s, s))
            img = img.astype(np.float32)
        rot = 0.0 if ch == "A" else self.theta
        for f in self.features:
            if ch in f.channels:
                x, y = (f.x, f.y) if ch == "A" else (f.bx, f.by)
                self._draw_feature(img, f, x, y, rot, f.amp_a if ch == "A" else f.amp_b)
        oy, ox = self._noise_at[0 if ch == "A" else 1]
        sd = p.noise_a if ch == "A" else p.noise_b
        img = img + 0.03 + sd * noise_bank()[oy:oy + s, ox:ox + s]
        out = self._intensity_cache[key] = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return out

    @staticmethod
    def _draw_feature(img: np.ndarray, f: Feature, x: float, y: float, rot: float, amp: float) -> None:
        s = img.shape[0]
        r = 4 if f.kind == "punctum" else int(f.arm) + 3
        x0, x1 = max(int(x) - r, 0), min(int(x) + r + 2, s)
        y0, y1 = max(int(y) - r, 0), min(int(y) + r + 2, s)
        if x1 <= x0 or y1 <= y0:
            return
        X = (np.arange(x0, x1) - x)[None, :]
        Y = (np.arange(y0, y1) - y)[:, None]
        if f.kind == "punctum":
            g = np.exp(-0.5 * (X * X + Y * Y) / (f.sigma * f.sigma))
        else:
            d2 = None
            for a in (f.phi + rot, f.phi + f.opening + rot):
                ux, uy = math.cos(a), math.sin(a)
                proj = np.clip(X * ux + Y * uy, 0.0, f.arm)
                dd = (X - proj * ux) ** 2 + (Y - proj * uy) ** 2
                d2 = dd if d2 is None else np.minimum(d2, dd)
            g = 0.85 * np.exp(-0.5 * d2 / (f.sigma * f.sigma))
        img[y0:y1, x0:x1] += (amp * g).astype(np.float32)

    def _render_overlay(self, qp: tuple) -> np.ndarray:
        """A in green, B in magenta warped by the (quantised) estimate: B_w(p) = B(T_est(p))."""
        s = self.params.size
        a8, b8 = self._intensity("A"), self._intensity("B")
        out = np.zeros((s, s, 3), np.uint8)
        out[:, :, 1] = a8
        if not self.rigid:
            dx, dy = qp
            ys0, ys1 = max(0, -dy), min(s, s - dy)
            xs0, xs1 = max(0, -dx), min(s, s - dx)
            if ys1 > ys0 and xs1 > xs0:
                w = b8[ys0 + dy:ys1 + dy, xs0 + dx:xs1 + dx]
                out[ys0:ys1, xs0:xs1, 0] = w
                out[ys0:ys1, xs0:xs1, 2] = w
            return out
        th, tx, ty = math.radians(qp[0] / 10), qp[1] / 2, qp[2] / 2
        ys, xs = np.mgrid[0:s, 0:s]
        c, sn = math.cos(th), math.sin(th)
        sx = np.rint(c * xs - sn * ys + tx).astype(np.intp)
        sy = np.rint(sn * xs + c * ys + ty).astype(np.intp)
        ok = (sx >= 0) & (sx < s) & (sy >= 0) & (sy < s)
        w = np.where(ok, b8[np.clip(sy, 0, s - 1), np.clip(sx, 0, s - 1)], 0)
        out[:, :, 0] = w
        out[:, :, 2] = w
        return out

    def draw_overlays(self, canvas: np.ndarray, mapper) -> None:
        # Markers change only when the landmarks do: compose once per (landmarks, view, size).
        key = ("overlay", self.view_key(), canvas.shape)
        composed = self.memo(key, lambda: self._compose(canvas.copy(), mapper))
        canvas[...] = composed

    def _compose(self, canvas: np.ndarray, mapper) -> np.ndarray:
        a, b = self.ann
        r = max(2, round(2 * mapper.pixel_size))
        sc = max(1, round(mapper.pixel_size))
        n = min(len(a), len(b))
        cross, xmark, ring = ("cross", r), ("x", r), ("ring", r + 1)
        cache = self._mark_px

        def stamp_px(x, y, stamp):
            # A stamp's pixels at (x, y), kept: landmarks stay put while others are added.
            px = cache.get((x, y, stamp))
            if px is None:
                st = _text_stamp(stamp[1], stamp[2]) if stamp[0] == "text" else mark_offsets(*stamp)
                px = cache[(x, y, stamp)] = (y + st[0], x + st[1])
            return px

        def marks(points, stamp, numbered=False):
            out = []
            for k, (u, v) in enumerate(points, 1):
                x, y = mapper.to_canvas_px(u, v)
                out.append(stamp_px(x, y, stamp))
                if numbered:
                    out.append(stamp_px(x + r + 1, y - r - 4 * sc, ("text", str(k), sc)))
            return out

        if self.view == "O":
            _paint(canvas, marks(a, cross, True), A_COLOR)
            est = self.estimate()
            if est is not None:
                th, t = est
                back = (np.asarray(b, float) - t) @ _rot(th)  # B landmarks mapped back into A
                _paint(canvas, marks(back.tolist(), xmark), B_COLOR)
            return canvas
        own, other = (a, b) if self.view == "A" else (b, a)
        own_c, other_c = (A_COLOR, B_COLOR) if self.view == "A" else (B_COLOR, A_COLOR)
        # The other channel's landmarks as faint rings; in B, the A landmark whose partner is
        # wanted as a bright one.
        split = n if self.view == "B" else len(other)
        _paint(canvas, marks(other[:split], ring), other_c, 0.45)
        _paint(canvas, marks(other[split:], ring), other_c)
        _paint(canvas, marks(own, cross, True), own_c)
        return canvas

    def status(self) -> tuple[str, ...]:
        # The second line depends on the landmarks only: kept across the view switches.
        return self.memo(("status", self.view), self._status_line1), self.memo("status2", self._status_line2)

    def _status_line1(self) -> str:
        a, b = self.ann
        n = min(len(a), len(b))
        return f"VIEW {VIEW_LABEL[self.view]}  PAIRS {n}/{self.n_target}  NEXT {self.next_expected()}"

    def _status_line2(self) -> str:
        a, b = self.ann
        est = self.estimate()
        if est is None:
            return f"A {len(a)} B {len(b)}  NO ESTIMATE"
        th, t = est
        c = np.array([self.c, self.c])
        d = _rot(th) @ c + t - c  # displacement at the canvas centre
        line2 = f"A {len(a)} B {len(b)}  DX {d[0]:+.1f} DY {d[1]:+.1f}"
        if self.rigid:
            line2 += f" R {math.degrees(th):+.1f}"
        return line2

    def selected(self) -> tuple[str, ...]:
        return (VIEW_LABEL[self.view],)

    def complete(self) -> bool:  # PAIRS N/N
        return min(len(self.ann[0]), len(self.ann[1])) >= self.n_target

    def position(self) -> float:
        return VIEW_POSITION[self.view]

    def target_point(self, k: int) -> tuple[float, float] | None:
        """Feature k where the view shows it: in B at its B position, in A and in the overlay
        (A's frame) at its A position."""
        if not 0 <= k < len(self.features):
            return None
        f = self.features[k]
        u, v = (f.bx, f.by) if self.view == "B" else (f.x, f.y)
        s = self.params.size
        return (u, v) if 0 <= u <= s - 1 and 0 <= v <= s - 1 else None


@dataclass(frozen=True)
class Step:
    """One click of the annotator's current plan: a button, or a canvas click at ``at``."""

    label: str | None  # the button; None for a canvas click
    phase: str
    target: int
    correction: bool = False
    at: tuple[float, float] | None = None
    # What the annotator learns once it sees this click made (e.g. a pair checked in the overlay).
    seen: Callable[[], None] | None = None


class AlignAnnotator(Annotator, task=MultichannelImageAlignment):
    """Surveys both channels, then pair by pair: checks a landmark shows in both channels, places it
    in A, finds its partner in B by toggling between the channels, places it, checks the overlay.
    DONE in the overlay once the status shows ``PAIRS N/N`` (a persona with ``final_check``
    checks every pair in the overlay against a channel first).

    A policy of the state: :meth:`next_intent` reads the landmarks against the ground truth and
    the view, and follows a short plan (a few view toggles ending in one click that changes the
    landmarks) while the state is what the plan's last click led to. It remembers what it has seen:
    the pairs it checked in the overlay (right or missed), the landmarks it noticed are wrong, the
    features it saw correctly paired (re-placed from memory after an UNDO, without searching).
    """

    persona: AlignPersona
    task: MultichannelImageAlignment

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        t, p = self.task, self.persona
        if p.n_pairs is None:  # the number the status asks for
            self._n_pairs = t.n_target
        else:
            n = int(self.draw(("pairs",)).integers(p.n_pairs[0], p.n_pairs[1] + 1))
            self._n_pairs = min(len(t.shared), n + int(t.rigid))  # one more when rotation is fitted
        self._order = self._choose()
        self._plan: list[Step] = []
        self._expect: tuple | None = None  # (landmarks, view) the last planned click leads to
        self._on_seen: Callable[[], None] | None = None
        self._surveyed = False
        self._checked: set[tuple] = set()  # pairs seen in the overlay
        self._final_checked: set[tuple] = set()  # pairs checked once more before DONE
        self._late_looked: set[tuple] = set()  # missed pairs given their late look (no final check)
        self._noticed: set[tuple] = set()  # wrong landmarks it has noticed (until removed)
        self._missed: set[tuple] = set()  # wrong pairs it looked at in the overlay and missed
        self._confirm = False  # one more CH-B/OVERLAY flick before removing what it noticed
        self._found: set[int] = set()  # features it has seen correctly paired
        self._mismatched: set[int] = set()  # features it has seen paired with the wrong partner
        self._slipped: set[int] = set()  # features it began with a landmark that had no partner

    def next_intent(self) -> Intent:
        t = self.task
        if self._expect == (t.ann, t.view):
            if self._on_seen is not None:
                self._on_seen()
        else:  # not where the plan's last click leads (it changed the landmarks, or another did)
            self._plan = []
        self._on_seen = None
        self._observe()
        if not self._plan:
            self._plan = self._make_plan()
        step = self._plan.pop(0)
        view = BUTTON_VIEW.get(step.label)
        # Clicks that change the landmarks (or end the episode) end a plan.
        self._expect = (t.ann, view) if view is not None else None
        self._on_seen = step.seen
        if step.at is not None:
            return self.place(*step.at, step.phase, step.target, step.correction)
        return self.press(step.label, step.phase, step.target, step.correction)

    # -- reading the state ----------------------------------------------------------------------
    def _item_at(self, point: tuple[float, float]) -> int:
        """The shared feature an A landmark marks, -1 for none."""
        f = self.task.features
        return next((i for i in self.task.shared
                     if math.hypot(point[0] - f[i].x, point[1] - f[i].y) <= A_TOL), -1)

    def _pairs(self) -> list[tuple[tuple, int, bool]]:
        """(key, feature its A landmark marks, right) for each complete pair."""
        a, b = self.task.ann
        return [(("pair", pa, pb), self._item_at(pa), r <= MISMATCH_TOL)
                for pa, pb, r in zip(a, b, self.task.pair_residuals())]

    def _wrong(self) -> list[tuple[tuple, int]]:
        """(key, feature) of each wrong landmark: mismatched pairs, landmarks in A that mark no
        shared feature, and landmarks in B that wait for an A partner (it places A first)."""
        a, b = self.task.ann
        n = min(len(a), len(b))
        wrong = [(key, j) for key, j, right in self._pairs() if not right]
        wrong += [(("A", pa), -1) for pa in a[n:] if self._item_at(pa) < 0]
        wrong += [(("B", pb), -1) for pb in b[n:]]
        return wrong

    def _next_feature(self) -> int:
        """The first feature in its order that no pair it takes for right marks yet."""
        done = {j for key, j, right in self._pairs() if right or key in self._missed}
        return next((j for j in self._order if j not in done), -1)

    def _observe(self) -> None:
        """Remember what this state shows: landmarks it would not have placed, and in the overlay
        whether each new pair lines up (noticed or missed, decided once per pair)."""
        t, p = self.task, self.persona
        a, b = t.ann
        n = min(len(a), len(b))
        # Landmarks it would never have placed catch the eye at once; a landmark in A without a
        # partner only once it has looked for one in B (see _search).
        self._noticed.update(("A", pa) for pa in a[n + 1:] if self._item_at(pa) < 0)
        self._noticed.update(("B", pb) for pb in b[n:])
        if not any(key in self._noticed for key, _ in self._wrong()):
            self._confirm = False
        if t.view != "O":
            return
        for key, j, right in self._pairs():
            if key in self._checked:
                continue
            self._checked.add(key)
            if right:
                if j >= 0:
                    self._found.add(j)
            elif self.decide(("notice", key), p.notice_rate):
                self._notice(key, j)
                self._confirm = self._confirm or self.decide(("confirm", key), p.confirm_rate)
            else:
                self._missed.add(key)

    def _notice(self, key: tuple, j: int) -> None:
        self._noticed.add(key)
        if j >= 0:
            self._mismatched.add(j)
        self._plan = []

    # -- the policy -----------------------------------------------------------------------------
    def _make_plan(self) -> list[Step]:
        """The next clicks from this state, first that applies: remove what it noticed is wrong,
        pair the landmark that waits for a partner, check new pairs in the overlay, survey, start
        the next pair, or check every pair once more and press DONE."""
        t = self.task
        a, b = t.ann
        n = min(len(a), len(b))
        noticed = [(key, j) for key, j in self._wrong() if key in self._noticed]
        if noticed:
            return self._remove(noticed)
        if len(a) > n:  # a landmark waits for its partner: that first, the overlay after
            j = self._item_at(a[n])
            return self._search(a[n]) if j < 0 else self._partner(j)
        pairs = self._pairs()
        unchecked = [(key, j) for key, j, _ in pairs if key not in self._checked]
        if unchecked:
            return self._verify(*unchecked[-1])
        if not a and not b and not self._surveyed:
            return self._survey()
        believed_right = sum(right or key in self._missed for key, _, right in pairs)
        if believed_right < self._n_pairs:
            return self._landmark(self._next_feature())
        if self.persona.final_check:
            return self._final_check(pairs)
        return self._finish()

    def _survey(self) -> list[Step]:
        p = self.persona
        k = int(self.draw(("survey",)).integers(p.survey_blinks[0], p.survey_blinks[1] + 1))
        steps = [self._show(v, "survey") for _ in range(k) for v in ("B", "A")]
        # The raw misalignment last: how far and which way B is off.
        return steps + [self._show("O", "survey", seen=self._survey_seen)]

    def _survey_seen(self) -> None:
        self._surveyed = True

    def _landmark(self, j: int) -> list[Step]:
        """Place feature j's landmark in A: after a quick look that B shows it too, or straight
        from memory when it has paired it before."""
        t, p = self.task, self.persona
        f = t.features[j]
        if j in self._found:
            return self._from_memory("A", j, (f.x, f.y))
        steps = self._to("A", "select", j)
        bead = self._one_channel_feature(j)
        if bead is not None and j not in self._slipped and self.decide(("single", j),
                                                                       p.single_rate):
            # Skips the look and marks a bead that only channel A shows.
            return steps + [Step(None, "place", j, at=bead)]
        return steps + [self._show("B", "inspect", j), self._show("A", "inspect", j),
                        Step(None, "place", j, at=(f.x, f.y))]

    def _partner(self, j: int) -> list[Step]:
        """Place the partner in B of the landmark that waits for one (on feature j): find it by
        toggling A/B, or straight from memory. After a mismatch it searches again (a correction)."""
        t, p = self.task, self.persona
        f = t.features[j]
        if j in self._found:
            return self._from_memory("B", j, (f.bx, f.by))
        redo = j in self._mismatched
        select, look, place = ("correct",) * 3 if redo else ("select", "inspect", "place")
        steps = self._to("B", select, j, redo) + self._blinks(j, look, redo)
        at = (f.bx, f.by)
        if not redo and self.decide(("mismatch", j), p.mismatch_rate):
            at = self._wrong_partner(j) or at
        return steps + [Step(None, place, j, redo, at)]

    def _search(self, point: tuple[float, float]) -> list[Step]:
        """A landmark in A that marks no shared feature: looks for its partner in B, finds none."""
        j = self._next_feature()
        lo, hi = self.persona.absent_looks
        m = int(self.draw(("absent", point)).integers(lo, hi + 1))
        looks = [self._show(v, "inspect", j) for _ in range(m) for v in ("A", "B")]
        looks[-1] = dataclasses.replace(looks[-1], seen=partial(self._no_partner, point, j))
        return self._to("B", "select", j) + looks

    def _no_partner(self, point: tuple[float, float], j: int) -> None:
        self._notice(("A", point), -1)
        self._slipped.add(j)

    def _verify(self, key: tuple, j: int) -> list[Step]:
        """The overlay after a new pair, sometimes one more CH-B/OVERLAY flick (not after a pair
        placed again)."""
        steps = [self._show("O", "verify", j)]
        again = j in self._found or j in self._mismatched
        if not again and self.decide(("flick", key), self.persona.flick_rate):
            steps += [self._show("B", "verify", j), self._show("O", "verify", j)]
        return steps

    def _remove(self, noticed: list[tuple[tuple, int]]) -> list[Step]:
        """UNDO until what it noticed is gone (later landmarks go too, UNDO takes the newest): once
        more CH-B/OVERLAY first when unsure; a landmark in A without a partner from CH-A."""
        key, j = noticed[0]
        j = j if j >= 0 else self._next_feature()
        if self._confirm:
            return self._to("B", "verify", j) + [self._show("O", "verify", j, seen=self._confirmed)]
        if key[0] == "A":
            return self._to("A", "correct", j, True) + [Step("UNDO", "correct", j, True)]
        return [Step("UNDO", "correct", j, True)]

    def _confirmed(self) -> None:
        self._confirm = False

    def _final_check(self, pairs: list[tuple[tuple, int, bool]]) -> list[Step]:
        """Each pair not yet checked again: a channel, then the overlay; then DONE. A mismatch
        missed before may stand out now."""
        steps = []
        for i, (key, j, _) in enumerate(pairs):
            if key not in self._final_checked:
                steps += [self._show("A" if i % 2 == 0 else "B", "verify", j),
                          self._show("O", "verify", j, seen=partial(self._final_look, key, j))]
        return steps + [Step("DONE", "finish", -1)]

    def _finish(self) -> list[Step]:
        """DONE in the overlay, where every pair shows: a mismatch it missed in its own check
        gets a late look there first (it may stand out now that all the pairs are placed)."""
        if self.task.view != "O":
            return [self._show("O", "verify")]
        for key, j, _ in self._pairs():
            if key in self._missed and key not in self._late_looked:
                self._late_looked.add(key)
                if self.decide(("late", key), self.persona.late_notice_rate):
                    self._missed.discard(key)
                    self._notice(key, j)
                    return self._make_plan()
        return [Step("DONE", "finish", -1)]

    def _final_look(self, key: tuple, j: int) -> None:
        self._final_checked.add(key)
        if key in self._missed and self.decide(("late", key), self.persona.late_notice_rate):
            self._missed.discard(key)
            self._notice(key, j)

    # -- helpers --------------------------------------------------------------------------------
    def _show(self, view: str, phase: str, j: int = -1, correction: bool = False,
              seen: Callable[[], None] | None = None) -> Step:
        return Step(VIEW_LABEL[view], phase, j, correction, seen=seen)

    def _from_memory(self, view: str, j: int, at: tuple[float, float]) -> list[Step]:
        """Feature j's landmark in ``view`` placed again where it was seen right: no search."""
        return self._to(view, "correct", j, True) + [Step(None, "correct", j, True, at)]

    def _to(self, view: str, phase: str, j: int, correction: bool = False) -> list[Step]:
        """The click that shows ``view``, if it is not shown."""
        return [] if self.task.view == view else [self._show(view, phase, j, correction)]

    def _choose(self) -> list[int]:
        """Every shared feature, in the order it would pair them: farthest first from the
        persona's corner (or one drawn), so that the pairs it places spread over the field."""
        t, p = self.task, self.persona
        f, size = t.features, t.params.size
        corners = [(0, 0), (size, 0), (0, size), (size, size)]
        c = p.start_corner if p.start_corner >= 0 else int(self.draw(("corner",)).integers(4))
        cx, cy = corners[c]
        order = [min(t.shared, key=lambda i: math.hypot(f[i].x - cx, f[i].y - cy))]
        while len(order) < len(t.shared):
            left = [i for i in t.shared if i not in order]
            order.append(max(left, key=lambda i: min(math.hypot(f[i].x - f[k].x, f[i].y - f[k].y)
                                                      for k in order)))
        if p.order == "scan":  # the same landmarks, in reading order
            n = self._n_pairs
            order[:n] = sorted(order[:n], key=lambda i: (int(f[i].y // 28), f[i].x))
        return order

    def _blinks(self, j: int, phase: str, correction: bool) -> list[Step]:
        """A/B toggles (ending on B) to find j's partner: at least one, more if it is confusable."""
        t, p = self.task, self.persona
        f = t.features[j]
        crowded = any(g is not f and "B" in g.channels and math.hypot(g.bx - f.bx, g.by - f.by) < 12
                      for g in t.features)
        rng = self.draw(("blinks", j, correction))
        n = 1
        while n < p.max_blinks and rng.random() < p.blink_continue:
            n += 1
        n = min(p.max_blinks, n + int(crowded and rng.random() < p.crowded_blink_rate))
        return [self._show(v, phase, j, correction) for _ in range(n) for v in ("A", "B")]

    def _one_channel_feature(self, j: int) -> tuple[float, float] | None:
        """The bead shown only in channel A nearest to feature j: where a hasty look goes wrong."""
        f = self.task.features
        only_a = [g for g in f if g.channels == "A"]
        if not only_a:
            return None
        g = min(only_a, key=lambda g: math.hypot(g.x - f[j].x, g.y - f[j].y))
        return (g.x, g.y)

    def _wrong_partner(self, j: int) -> tuple[float, float] | None:
        """A feature in B that a person confuses with j's partner: the one nearest the A landmark's
        own screen spot (the shift forgotten) or nearest the true partner (a look-alike)."""
        t, s = self.task, self.task.params.size
        f = t.features[j]
        best, best_d = None, math.inf
        for g in t.features:
            if g is f or "B" not in g.channels or not (2 <= g.bx <= s - 3 and 2 <= g.by <= s - 3):
                continue
            d = min(math.hypot(g.bx - f.x, g.by - f.y), math.hypot(g.bx - f.bx, g.by - f.by))
            if d < best_d:
                best, best_d = (g.bx, g.by), d
        return best if best_d < 25 else None
