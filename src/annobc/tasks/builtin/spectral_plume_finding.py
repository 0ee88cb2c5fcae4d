"""spectral_plume_finding: find the gas plume in a hyperspectral cube and mark its source.

Analogue: methane plume detection in imaging spectroscopy (a SWIR imager over oil-and-gas country:
fields, scrub, roads and bright well pads; a methane plume absorbs in a few bands only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from annobc.gui import draw_mark
from annobc.tasks.annotator import Annotator, Intent
from annobc.tasks.base import Button, Effect, NO_EFFECT, Persona, Task

LAMBDA_NM = (1000.0, 2500.0)  # wavelength of the first and the last band
SOURCE_RADIUS = 4.0  # a mark within this many data pixels of the source finds it
MARK_COLOR = (255, 215, 0)
COARSE = 10  # the BAND+10 / BAND-10 step
NOISE_BANK = 512
SMOOTH_BANK = 320
STRONG = 0.6  # a band shows the plume strongly (a window band: >= 0.72 x the peak; wings <= 0.35)

# Field materials: smooth SWIR reflectance spectra of x = normalised wavelength in [0, 1], and how
# much texture a parcel of it has. Every scene perturbs them smoothly, so no two scenes share spectra.
_FIELD = ("soil", "scrub", "crop", "sand", "fallow", "stubble")
_TEXTURE = {"soil": 0.05, "scrub": 0.12, "crop": 0.09, "sand": 0.04, "fallow": 0.07,
            "stubble": 0.08, "asphalt": 0.02, "gravel": 0.03}


def _g(x: np.ndarray, c: float, w: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - c) / w) ** 2)


def _spectrum(name: str, x: np.ndarray, pad_dip: float = 0.7) -> np.ndarray:
    if name == "soil":
        return 0.21 + 0.15 * x - 0.08 * x ** 2 - 0.02 * _g(x, 0.62, 0.09)
    if name == "scrub":
        return 0.25 + 0.04 * x - 0.035 * _g(x, 0.30, 0.1) - 0.05 * _g(x, 0.62, 0.1)
    if name == "crop":
        return 0.40 - 0.20 * x - 0.04 * _g(x, 0.30, 0.1) - 0.06 * _g(x, 0.62, 0.1)
    if name == "sand":
        return 0.33 + 0.11 * x - 0.04 * x ** 2
    if name == "fallow":
        return 0.17 + 0.07 * x
    if name == "stubble":
        return 0.28 - 0.04 * x + 0.03 * _g(x, 0.45, 0.15)
    if name == "asphalt":
        return 0.09 + 0.03 * x
    if name == "gravel":  # bright pads; a broad carbonate-like dip, as real bright surfaces have
        return 0.52 + 0.05 * x - 0.06 * _g(x, pad_dip, 0.12)
    raise KeyError(name)


def _illumination(x: np.ndarray) -> np.ndarray:
    """Solar irradiance times atmospheric transmittance: a falloff and two broad water dips."""
    return (1.0 - 0.42 * x) * (1.0 - 0.22 * _g(x, 0.29, 0.045)) * (1.0 - 0.3 * _g(x, 0.6, 0.05))


@lru_cache(maxsize=1)
def white_bank() -> np.ndarray:
    """Fixed unit-variance sensor noise; each band crops it at its own offset."""
    return np.random.default_rng(20260301).normal(0.0, 1.0, (NOISE_BANK, NOISE_BANK)).astype(np.float32)


@lru_cache(maxsize=1)
def smooth_bank() -> np.ndarray:
    """Fixed smooth (Gaussian-filtered, sigma 2.5 px) unit-variance noise for texture and turbulence."""
    n = np.random.default_rng(20260302).normal(0.0, 1.0, (SMOOTH_BANK, SMOOTH_BANK))
    f = np.fft.fftfreq(SMOOTH_BANK)
    k = np.exp(-2 * (np.pi * 2.5) ** 2 * (f[:, None] ** 2 + f[None, :] ** 2))
    s = np.real(np.fft.ifft2(np.fft.fft2(n) * k))
    return ((s - s.mean()) / s.std()).astype(np.float32)


@lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy, xx


# The ratio view is shown in a cool-tinted grey, as band-ratio products often are, so that it
# cannot be mistaken for a plain band: red and green are scaled down by these tables.
_RATIO_R = np.round(np.arange(256) * 0.80).astype(np.uint8)
_RATIO_G = np.round(np.arange(256) * 0.92).astype(np.uint8)


def _to_rgb(g: np.ndarray, tint: bool = False) -> np.ndarray:
    """Grey levels (float32, any range; clipped in place) -> (h, w, 3) uint8, optionally tinted."""
    np.clip(g, 0, 255, out=g)
    idx = g.astype(np.uint8)
    if tint:
        return np.stack([np.take(_RATIO_R, idx), np.take(_RATIO_G, idx), idx], 2)
    return np.stack([idx, idx, idx], 2)


@dataclass(frozen=True)
class Params:
    size: int = 112  # canvas data grid side, pixels
    n_bands: tuple[int, int] = (32, 64)
    window_bands: tuple[int, int] = (3, 5)  # bands in which the gas absorbs strongly
    n_materials: tuple[int, int] = (4, 6)  # field materials (roads and pads come on top)
    n_parcels: tuple[int, int] = (8, 16)
    n_pads: tuple[int, int] = (2, 4)  # bright well pads away from the source
    plume_length: tuple[float, float] = (35.0, 58.0)  # pixels from the source to the wide end
    plume_half_angle: tuple[float, float] = (8.0, 15.0)  # degrees
    plume_depth: tuple[float, float] = (0.4, 0.6)  # optical depth at the source in the peak band
    wing: float = 0.35  # absorption just outside the window, relative to the peak
    wing_bands: float = 4.0  # e-folding of the wings, bands
    ratio_offset: int = 6  # RATIO divides by the band this far below (above, for the first bands)
    noise: float = 0.02  # sensor noise, relative to a typical pixel


@dataclass(frozen=True)
class PlumePersona(Persona):
    bright_rate: float = 0.035  # marks a bright land feature (a pad) instead of the source
    wrong_end_rate: float = 0.035  # marks the wide end of the plume instead of its narrow end
    notice_rate: float = 0.95
    # Coarse survey: "both": up in the plain view, back down in RATIO to band 0; "ratio": up in
    # RATIO; "plain": up in the plain view. It ends in the plain view; then the fine scan goes up
    # band by band to the last band, turns RATIO on there and comes down band by band to the
    # first band where the plume shows strongly (the window's top band), and marks there.
    survey: str = "both"
    # At the band it is about to mark on, RATIO off and on to compare (a coin; the default never).
    blink_rate: float = 0.0
    # After the neighbouring-band check, back to the mark's band, RATIO off, then the window's
    # bottom band in the plain view before DONE; the default presses DONE at the neighbouring band.
    final_check: bool = False

    MISTAKE_FIELDS: ClassVar[tuple[str, ...]] = ("bright_rate", "wrong_end_rate")
    NOTICE_FIELDS: ClassVar[tuple[str, ...]] = ("notice_rate",)


@dataclass(frozen=True)
class Plume:
    x: float  # source (the cone's narrow end), data pixels
    y: float
    angle: float  # downwind direction, radians
    length: float
    half_angle: float  # radians
    bend: float  # lateral drift per unit length (a gently curving plume)
    depth: float  # optical depth at the source in the peak band
    window: tuple[int, int]  # first and last absorbing band (inclusive)
    peak: int  # the band of strongest absorption

    def axis_point(self, d: float) -> tuple[float, float]:
        """The point on the (bent) plume axis d pixels downwind of the source."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        w = self.bend * d * d / self.length
        return self.x + d * c - w * s, self.y + d * s + w * c

    @property
    def far_end(self) -> tuple[float, float]:
        return self.axis_point(0.9 * self.length)


class SpectralPlumeFinding(Task):
    """Find the band window where a gas plume absorbs and mark the plume's source.

    ## Description
    A hyperspectral cube (32-64 bands, 1000-2500 nm) over land: rectangular parcels of a few
    materials with smooth, distinct spectra, roads, bright well pads, and sensor noise. A gas plume
    spreads downwind from a source point as a widening, slightly bent, turbulent cone; it absorbs
    strongly in a window of 3-5 consecutive bands (with faint wings a few bands either side) and
    not at all elsewhere. The canvas shows one band at a time (greyscale), or, with RATIO on, that
    band divided by a reference band (ratio view, cool-tinted), which cancels the land and makes
    absorption stand out as a dark plume. The annotator must find the window and mark the source,
    the cone's narrow end, while viewing a band inside the window.

    ## Action Space
    A left click at a screen pixel. Buttons: ``BAND+``, ``BAND-``, ``BAND+10``, ``BAND-10``
    (navigate; clamped to the cube), ``RATIO`` (view: ratio on/off), ``UNDO``, ``DONE``. A canvas
    click marks the source at (x, y) on the current band, replacing a previous mark (undoable).

    ## Observation Space
    The rendered screen: the current band or its ratio, the mark as a yellow cross on every band,
    the status lines ``BAND <b>/<B-1>  <nm>NM  RATIO OFF|ON /B<ref>`` and
    ``SOURCE NOT MARKED | SOURCE MARKED ON BAND <b>``, and the RATIO button highlighted while on.

    ## Rewards
    Zero until the episode ends, then the score: 0.5 if the mark is within 4 data pixels of the
    source plus 0.5 if it was made on a band inside the absorption window (0 without a mark).

    ## Episode End
    DONE terminates; the env's step cap truncates. Success: both parts of the score.

    ## Arguments
    See :class:`Params`: number of bands, window width, field materials and parcels, pads, plume
    length, opening angle and absorption depth, the absorption wings, the ratio's reference offset,
    noise.

    ## Version History
    - v0: initial version.
    - v1: the annotator is a policy of the state (band, RATIO, mark) and how far along its
      itinerary it has come; it removes a wrong mark it did not choose to leave at once, from any
      state.
    - v2: the default annotator decides on what the screen shows: after the coarse survey the fine
      scan goes up band by band to the last band (no turn back at a hidden 10% threshold plus a
      random margin), turns RATIO on there and comes down to the first band where the plume shows
      strongly, the window's top band, and marks the source there (not at the hidden peak band,
      no ratio tour of the window's edges, no RATIO blink coins); it checks the mark on the
      neighbouring window band and presses DONE there (no final plain-view pass ending at the
      hidden last window band). After an UNDO it marks again on the window band it is on.
      The DONE button is drawn lit while the status shows ``SOURCE MARKED`` (``complete()``).
    """

    task_id = "spectral_plume_finding"
    version = 2
    instruction = ("Find the bands where the gas plume absorbs and mark the plume's source, its "
                   "narrow end, on one of them.")
    Params = Params
    buttons = (Button("BAND+", "navigate"), Button("BAND-", "navigate"),
               Button("BAND+10", "navigate"), Button("BAND-10", "navigate"),
               Button("RATIO", "view"), Button("UNDO", "undo"), Button("DONE", "done"))
    personas = {
        "default": PlumePersona(),
        "quick": PlumePersona(survey="ratio", blink_rate=0.3),
        "careless": PlumePersona(bright_rate=0.07, wrong_end_rate=0.07, notice_rate=0.85,
                                 blink_rate=0.3, final_check=True, place_sigma=0.8, place_max=2.0),
    }
    correction_length = 1  # UNDO takes the wrong mark away

    # -- scene ---------------------------------------------------------------------------------
    def setup(self, rng: np.random.Generator) -> None:
        p = self.params
        s = p.size
        if p.ratio_offset <= p.window_bands[1]:
            raise ValueError("ratio_offset must exceed the widest window, so that the reference "
                             "band of a window band lies outside the window")
        B = self.n_bands = int(rng.integers(p.n_bands[0], p.n_bands[1] + 1))
        x = np.linspace(0.0, 1.0, B)
        self.wavelengths = np.round(LAMBDA_NM[0] + x * (LAMBDA_NM[1] - LAMBDA_NM[0])).astype(int)

        # Materials: field covers, then asphalt (roads) and gravel (pads).
        n_mat = int(rng.integers(p.n_materials[0], p.n_materials[1] + 1))
        names = [str(n) for n in rng.choice(_FIELD, size=min(n_mat, len(_FIELD)), replace=False)]
        names += ["asphalt", "gravel"]
        pad_dip = float(rng.uniform(0.2, 0.9))
        refl = np.empty((len(names), B))
        for i, n in enumerate(names):
            f, ph = rng.uniform(0.5, 1.3), rng.uniform(0, 2 * np.pi)
            scale = rng.uniform(0.88, 1.12)
            refl[i] = _spectrum(n, x, pad_dip) * scale * (1 + 0.04 * np.cos(2 * np.pi * f * x + ph))
        self.materials = tuple(names)
        self.illum = _illumination(x)
        rad_table = (refl * self.illum[None, :]).astype(np.float32)  # (materials, bands)
        self._rad_table = np.ascontiguousarray(rad_table.T)  # (bands, materials)
        n_field = len(names) - 2
        ASPHALT, GRAVEL = n_field, n_field + 1

        # Parcels: recursive splits of the canvas, each of one field material.
        mat = np.empty((s, s), np.uint8)
        bright = np.empty((s, s), np.float32)
        rects = [(0, 0, s, s)]
        n_parcels = int(rng.integers(p.n_parcels[0], p.n_parcels[1] + 1))
        while len(rects) < n_parcels:
            area = [(r[2] - r[0]) * (r[3] - r[1]) for r in rects]
            x0, y0, x1, y1 = rects.pop(int(np.argmax(area)))
            if x1 - x0 >= y1 - y0:
                c = int(round(x0 + (x1 - x0) * rng.uniform(0.3, 0.7)))
                rects += [(x0, y0, c, y1), (c, y0, x1, y1)]
            else:
                c = int(round(y0 + (y1 - y0) * rng.uniform(0.3, 0.7)))
                rects += [(x0, y0, x1, c), (x0, c, x1, y1)]
        rows = {names.index(n) for n in ("crop", "stubble") if n in names}
        for x0, y0, x1, y1 in rects:
            m = int(rng.integers(0, n_field))
            mat[y0:y1, x0:x1] = m
            bright[y0:y1, x0:x1] = rng.uniform(0.88, 1.12)
            if m in rows:  # crop rows along the parcel's long side
                period = float(rng.uniform(2.5, 4.0))
                if x1 - x0 >= y1 - y0:
                    wave = np.sin(2 * np.pi * np.arange(y0, y1) / period)[:, None]
                else:
                    wave = np.sin(2 * np.pi * np.arange(x0, x1) / period)[None, :]
                bright[y0:y1, x0:x1] *= 1 + 0.06 * wave

        # Roads: one or two straight tracks along parcel edges, sometimes a diagonal one.
        yy, xx = _grid(s)
        for _ in range(int(rng.integers(1, 3))):
            x0, y0, x1, y1 = rects[int(rng.integers(len(rects)))]
            if rng.random() < 0.5 and 2 < x0 < s - 3:
                mat[:, x0 - 1:x0 + 1] = ASPHALT
            elif 2 < y0 < s - 3:
                mat[y0 - 1:y0 + 1, :] = ASPHALT
        if rng.random() < 0.4:
            a = rng.uniform(0, np.pi)
            c0 = rng.uniform(0.3, 0.7) * s
            dist = np.abs((xx - c0) * math.sin(a) - (yy - c0) * math.cos(a))
            mat[dist < 0.8] = ASPHALT

        self.plume = plume = self._make_plume(rng, B)

        # Pads: bright gravel rectangles, away from the source; one under the source half the time.
        self.pads: list[tuple[float, float]] = []
        tries = 0
        n_pads = int(rng.integers(p.n_pads[0], p.n_pads[1] + 1))
        while len(self.pads) < n_pads and tries < 200:
            tries += 1
            cx, cy = rng.uniform(8, s - 9, 2)
            if math.hypot(cx - plume.x, cy - plume.y) < 12:
                continue
            if any(math.hypot(cx - a, cy - b) < 10 for a, b in self.pads):
                continue
            hw, hh = int(rng.integers(1, 3)), int(rng.integers(1, 3))
            ix, iy = int(round(cx)), int(round(cy))
            mat[iy - hh:iy + hh + 1, ix - hw:ix + hw + 1] = GRAVEL
            bright[iy - hh:iy + hh + 1, ix - hw:ix + hw + 1] = 1.0
            self.pads.append((float(ix), float(iy)))
        if rng.random() < 0.5:
            ix, iy = int(round(plume.x)), int(round(plume.y))
            mat[iy - 1:iy + 2, ix - 1:ix + 2] = GRAVEL
            bright[iy - 1:iy + 2, ix - 1:ix + 2] = 0.9

        # Texture: per-material strength times a crop of the smooth bank.
        tex_amp = np.array([_TEXTURE[n] for n in names], np.float32)
        oy, ox = rng.integers(0, SMOOTH_BANK - s, 2)
        gy, gx = rng.integers(0, NOISE_BANK - s, 2)
        shade = bright * (1.0 + tex_amp[mat] * smooth_bank()[oy:oy + s, ox:ox + s]
                          + 0.03 * white_bank()[gy:gy + s, gx:gx + s])
        self._mat = mat
        self._shade = shade.astype(np.float32)
        # Mean clean radiance per band (for the display stretch), from per-material shade sums.
        wsum = np.bincount(mat.ravel(), weights=shade.ravel(), minlength=len(names))
        self._band_mean = (self._rad_table @ wsum.astype(np.float32)) / (s * s)
        self._noise_sigma = p.noise * float(self._band_mean.mean())

        self._conc_box, self._conc = self._concentration(rng, plume)
        # Absorption (optical depth at unit concentration) per band: the window and its wings.
        absorb = np.zeros(B)
        w0, w1 = plume.window
        for b in range(B):
            if w0 <= b <= w1:
                absorb[b] = 1.0 if b == plume.peak else rng.uniform(0.72, 0.92)
            else:
                d = w0 - b if b < w0 else b - w1
                absorb[b] = p.wing * math.exp(-(d - 1) / p.wing_bands)
        self.absorb = absorb * plume.depth
        self._noise_off = rng.integers(0, NOISE_BANK - s, (B, 2))
        self._rad: dict[int, np.ndarray] = {}
        # GUI state
        self.band = 0
        self.ratio = False
        self.ann: tuple[float, float, int] | None = None  # the mark (u, v, band)

    def _make_plume(self, rng: np.random.Generator, B: int) -> Plume:
        p = self.params
        s = p.size
        k = int(rng.integers(p.window_bands[0], p.window_bands[1] + 1))
        margin = max(8, p.ratio_offset + 2)
        if B - 2 * margin - k + 1 < 1:
            raise ValueError(f"{B} bands leave no room for a {k}-band window {margin} bands "
                             f"from either end; use more bands")
        w0 = int(rng.integers(margin, B - margin - k + 1))
        peak = w0 + int(rng.integers(0, k))
        depth = float(rng.uniform(*p.plume_depth))
        half = math.radians(float(rng.uniform(*p.plume_half_angle)))
        for _ in range(200):
            length = float(rng.uniform(*p.plume_length))
            sx, sy = rng.uniform(14, s - 15, 2)
            angle = float(rng.uniform(0, 2 * np.pi))
            bend = float(rng.uniform(-0.12, 0.12))
            pl = Plume(float(sx), float(sy), angle, length, half, bend, depth, (w0, w0 + k - 1), peak)
            ends = [pl.axis_point(length * f) for f in (0.5, 1.0)]
            if all(8 <= a <= s - 9 and 8 <= b <= s - 9 for a, b in ends):
                return pl
        # Unreachable in practice; a short plume towards the centre always fits.
        a = math.atan2(s / 2 - sy, s / 2 - sx)
        return Plume(float(sx), float(sy), a, 30.0, half, 0.0, depth, (w0, w0 + k - 1), peak)

    def _concentration(self, rng: np.random.Generator, pl: Plume):
        """Gas column of the plume on its bounding box: a widening Gaussian cone with puffs."""
        s = self.params.size
        tan_a = math.tan(pl.half_angle)
        ends = [pl.axis_point(pl.length * f) for f in (0.0, 0.5, 1.0)]
        r = 3 + pl.length * tan_a * 2.5
        x0 = max(int(min(e[0] for e in ends) - r), 0)
        x1 = min(int(max(e[0] for e in ends) + r) + 1, s)
        y0 = max(int(min(e[1] for e in ends) - r), 0)
        y1 = min(int(max(e[1] for e in ends) + r) + 1, s)
        yy, xx = _grid(s)
        dx, dy = xx[y0:y1, x0:x1] - pl.x, yy[y0:y1, x0:x1] - pl.y
        c, sn = math.cos(pl.angle), math.sin(pl.angle)
        d = dx * c + dy * sn
        w = -dx * sn + dy * c - pl.bend * np.maximum(d, 0) ** 2 / pl.length
        sig = 0.9 + np.maximum(d, 0) * tan_a
        onset = 1.0 / (1.0 + np.exp(np.minimum(-(d + 0.6) / 0.5, 30.0)))
        tail = 1.0 / (1.0 + np.exp(np.minimum((d - pl.length) / (0.08 * pl.length), 30.0)))
        oy, ox = rng.integers(0, SMOOTH_BANK - (y1 - y0) - 1), rng.integers(0, SMOOTH_BANK - (x1 - x0) - 1)
        puffs = np.clip(1.0 + 0.45 * smooth_bank()[oy:oy + y1 - y0, ox:ox + x1 - x0], 0.25, 2.0)
        conc = 1.25 * np.exp(-0.5 * (w / sig) ** 2) * (0.9 / sig) ** 0.45 * onset * tail * puffs
        return (y0, y1, x0, x1), conc.astype(np.float32)

    @property
    def data_shape(self) -> tuple[int, int]:
        return (self.params.size, self.params.size)

    def ref_band(self, b: int | None = None) -> int:
        """The band RATIO divides by: ratio_offset below, or above for the first bands."""
        b = self.band if b is None else b
        off = self.params.ratio_offset
        return b - off if b >= off else b + off

    # -- GUI state machine ----------------------------------------------------------------------
    def press_button(self, label: str) -> Effect:
        step = {"BAND+": 1, "BAND-": -1, "BAND+10": COARSE, "BAND-10": -COARSE}.get(label)
        if step is not None:
            self.band = min(max(self.band + step, 0), self.n_bands - 1)
        elif label == "RATIO":
            self.ratio = not self.ratio
        return NO_EFFECT

    def click_canvas(self, u: float, v: float) -> Effect:
        self.checkpoint()
        self.ann = (float(u), float(v), self.band)
        return Effect(annotated=True, wrong=self.n_wrong() > 0)

    # -- rendering ------------------------------------------------------------------------------
    def radiance(self, b: int) -> np.ndarray:
        """Band b at sensor (float32, cached): land x illumination x gas transmittance + noise."""
        r = self._rad.get(b)
        if r is None:
            r = np.take(self._rad_table[b], self._mat) * self._shade
            a = self.absorb[b]
            if a > 1e-3:
                y0, y1, x0, x1 = self._conc_box
                r[y0:y1, x0:x1] *= np.exp(-a * self._conc)
            s = self.params.size
            oy, ox = self._noise_off[b]
            r += self._noise_sigma * white_bank()[oy:oy + s, ox:ox + s]
            self._rad[b] = r
        return r

    def view_key(self):
        return (self.band, self.ratio)

    def canvas_key(self):
        return (self.band, self.ratio, self.ann)

    def render_view(self, key: tuple[int, bool]) -> np.ndarray:
        return self._render_view(*key)

    def _render_view(self, b: int, ratio: bool) -> np.ndarray:
        if not ratio:
            return _to_rgb(self.radiance(b) * np.float32(118.0 / self._band_mean[b]))
        ref = self.ref_band(b)
        g = self.radiance(b) / self.radiance(ref)
        g *= np.float32(330.0 * self._band_mean[ref] / self._band_mean[b])
        g -= np.float32(330.0 - 150.0)
        return _to_rgb(g, tint=True)

    def draw_overlays(self, canvas: np.ndarray, mapper) -> None:
        if self.ann is not None:
            x, y = mapper.to_canvas_px(self.ann[0], self.ann[1])
            draw_mark(canvas, x, y, MARK_COLOR, "cross", max(3, round(3 * mapper.pixel_size)))

    def status(self) -> tuple[str, ...]:
        b = self.band
        view = f"RATIO ON /B{self.ref_band()}" if self.ratio else "RATIO OFF"
        mark = "SOURCE NOT MARKED" if self.ann is None else f"SOURCE MARKED ON BAND {self.ann[2]}"
        return (f"BAND {b}/{self.n_bands - 1}  {self.wavelengths[b]}NM  {view}", mark)

    def selected(self) -> tuple[str, ...]:
        return ("RATIO",) if self.ratio else ()

    def complete(self) -> bool:
        return self.ann is not None  # SOURCE MARKED

    # -- latents and score ----------------------------------------------------------------------
    def position(self) -> float:
        return self.band / (self.n_bands - 1)

    def _check(self) -> tuple[bool, bool]:
        return self.memo("check", self._compute_check)

    def _compute_check(self) -> tuple[bool, bool]:
        """(mark within SOURCE_RADIUS of the source, mark made on a window band)."""
        if self.ann is None:
            return (False, False)
        u, v, b = self.ann
        w0, w1 = self.plume.window
        return (math.hypot(u - self.plume.x, v - self.plume.y) <= SOURCE_RADIUS, w0 <= b <= w1)

    def target_point(self, k: int) -> tuple[float, float] | None:
        """The plume's source (k = 0), at the same place in every band."""
        return (self.plume.x, self.plume.y) if k == 0 else None

    def target_offset(self, k: int) -> int | None:
        """Bands from the band of strongest absorption."""
        return self.band - self.plume.peak if k == 0 else None

    def n_wrong(self) -> int:
        return int(self.ann is not None and not all(self._check()))

    def score(self) -> tuple[float, bool]:
        if self.ann is None:
            return 0.0, False
        near, in_window = self._check()
        return 0.5 * near + 0.5 * in_window, near and in_window


@dataclass(frozen=True)
class Waypoint:
    """A view the annotator's itinerary visits, and how it travels there."""

    band: int
    ratio: bool
    phase: str  # the travel's phase; all but the fine scan (inspect) take coarse steps
    target: int = 0

    @property
    def view(self) -> tuple[int, bool]:
        return (self.band, self.ratio)


class PlumeAnnotator(Annotator, task=SpectralPlumeFinding):
    """Coarse survey, fine scan up to the last band, down in RATIO to the window, mark, check.

    The policy travels an itinerary of views (:class:`Waypoint`): the persona's coarse survey, a
    fine scan up band by band to the last band (``BAND B-1/B-1``), RATIO on there, and a fine scan
    down to the first band where the plume shows strongly in the ratio view: the window's top band
    (window bands absorb at least 0.72 of the peak, the band above at most 0.35). Every turn is at
    something the screen shows. It remembers how far along the itinerary it has come. Then it
    marks the source there (RATIO off and on first, if its persona blinks) and checks the mark on
    the neighbouring window band, where the narrow end of the dark cone must sit under the mark
    too, and presses DONE there (a persona's final check goes back, RATIO off and to the window's
    bottom band first). It remembers how much of that check it has seen since the mark last
    changed. A wrong mark it removes with UNDO at once, unless it is its own mistake, left until
    the neighbouring band shows it (or for good, if it does not notice); it marks again on the
    window band it is on.
    """

    persona: PlumePersona
    task: SpectralPlumeFinding

    def __init__(self, session, persona: PlumePersona, rng: np.random.Generator):
        super().__init__(session, persona, rng)
        self.itinerary = self._itinerary()
        self._reached = 0  # waypoints of the itinerary reached, in order
        self._blinked = False  # it has turned RATIO off to compare before its first mark
        self._checked_for: tuple | None = None  # the mark its check began from,
        self._checked = 0  # and the check's waypoints reached since
        self._saw_wrong = False  # a wrong mark was up: the next mark is a correction
        self._standing: tuple[tuple, bool] | None = None  # (its own wrong mark, will notice)
        self._marked = False  # the first mark's occasion (a mistake or not) has come

    # What the annotator sees in a band: the plume's absorption there relative to the peak band.
    def _rel(self, b: int) -> float:
        t = self.task
        return float(t.absorb[b] / t.plume.depth)

    def _strong(self, b: int) -> bool:
        """Whether band b shows the plume strongly in the ratio view: a window band."""
        return self._rel(b) >= STRONG

    def _itinerary(self) -> tuple[Waypoint, ...]:
        t, p = self.task, self.persona
        B = t.n_bands
        coarse = list(range(0, B, COARSE))
        up_plain = [Waypoint(c, False, "survey", -1) for c in coarse]
        if p.survey == "both":  # up in the plain view, back down in RATIO, RATIO off
            survey = up_plain + [Waypoint(c, True, "survey", -1) for c in reversed(coarse)]
            survey.append(Waypoint(0, False, "survey", -1))
        elif p.survey == "ratio":
            survey = [Waypoint(c, True, "survey", -1) for c in coarse]
        else:
            survey = up_plain
        # The first strong band coming down from the last band: the window's top band.
        home = max(b for b in range(B) if self._strong(b))
        return (*survey,
                # Fine scan up to the last band, in the view the survey ended in; RATIO on there;
                # then down band by band until the plume shows strongly.
                Waypoint(B - 1, survey[-1].ratio, "inspect"), Waypoint(B - 1, True, "inspect"),
                Waypoint(home, True, "inspect"))

    def _check(self, home: int) -> tuple[Waypoint, ...]:
        """After marking on band ``home``: the neighbouring window band (a window has 3-5 bands,
        so there is one; the one above if it shows the plume strongly), where the narrow end of the
        dark cone must sit under the mark too. The persona's final check: back, RATIO off, the
        window's bottom band in the plain view."""
        t = self.task
        nb = home + 1 if home + 1 < t.n_bands and self._strong(home + 1) else home - 1
        check = [Waypoint(nb, True, "verify")]
        if self.persona.final_check:
            check += [Waypoint(home, True, "verify"), Waypoint(home, False, "verify"),
                      Waypoint(t.plume.window[0], False, "verify")]
        return tuple(check)

    def next_intent(self) -> Intent:
        t = self.task
        self._observe()
        if t.n_wrong() and not self._leaves_standing():
            return self.press("UNDO", "correct", 0, True)
        if self._reached < len(self.itinerary):
            return self._towards(self.itinerary[self._reached])
        if t.ann is None:
            return self._mark()
        check = self._check(t.ann[2])
        if self._checked < len(check):
            return self._towards(check[self._checked])
        return self.press("DONE", "finish")

    def _observe(self) -> None:
        t = self.task
        view = (t.band, t.ratio)
        while self._reached < len(self.itinerary) and view == self.itinerary[self._reached].view:
            self._reached += 1
        if t.ann != self._checked_for:  # a new mark (or none): its check begins from here
            self._checked_for, self._checked = t.ann, 0
        if t.ann is not None:
            check = self._check(t.ann[2])
            while self._checked < len(check) and view == check[self._checked].view:
                self._checked += 1
        self._saw_wrong |= t.n_wrong() > 0

    def _leaves_standing(self) -> bool:
        """Whether the wrong mark up now is its own, left until the neighbouring band shows it."""
        if self._standing is None or self._standing[0] != self.task.ann:
            self._standing = None  # another hand changed the mark: nothing is left on purpose
            return False
        will_notice = self._standing[1]
        return not will_notice or self._checked == 0

    def _towards(self, wp: Waypoint, correction: bool = False) -> Intent:
        """One click towards the view ``wp``: RATIO off before moving, on once there."""
        t = self.task
        d = wp.band - t.band
        if t.ratio != wp.ratio and (t.ratio or d == 0):
            label = "RATIO"
        # A coarse step where it lands on or short of the band, or on the first or last band (it
        # is clamped there); the fine scan steps through every band.
        elif wp.phase != "inspect" and (abs(d) >= COARSE or wp.band in (0, t.n_bands - 1)):
            label = "BAND+10" if d > 0 else "BAND-10"
        else:
            label = "BAND+" if d > 0 else "BAND-"
        return self.press(label, wp.phase, wp.target, correction)

    def _mark(self) -> Intent:
        """Marks the source in RATIO on the band it is on if that shows the plume strongly, else
        on the itinerary's last band (the window's top band); the first mark may go wrong."""
        t, p, pl = self.task, self.persona, self.task.plume
        home = t.band if self._strong(t.band) else self.itinerary[-1].band
        if (t.band, t.ratio) == (home, True) and not self._saw_wrong and not self._blinked \
                and self.decide(("blink", home), p.blink_rate):
            self._blinked = True  # RATIO off to compare the plain band, then on again
            return self.press("RATIO", "inspect", 0)
        if (t.band, t.ratio) != (home, True):
            phase = "correct" if self._saw_wrong else "inspect" if self._blinked else "navigate"
            return self._towards(Waypoint(home, True, phase), correction=self._saw_wrong)
        if self._saw_wrong:
            return self.place(pl.x, pl.y, "correct", 0, True)
        if not self._marked:
            self._marked = True
            roll = self.draw(("mark",)).random()
            wrong = None
            if roll < p.bright_rate and t.pads:
                # A bright pad near the plume catches the eye.
                wrong = min(t.pads, key=lambda q: math.hypot(q[0] - pl.x, q[1] - pl.y))
            elif roll < p.bright_rate + p.wrong_end_rate:
                wrong = pl.far_end
            if wrong is not None:
                intent = self.place(*wrong, "place", 0)
                mark = (*self.session.mapper.to_data(intent.x, intent.y), t.band)
                self._standing = (mark, self.decide(("notice", "mark"), p.notice_rate))
                return intent
        return self.place(pl.x, pl.y, "place", 0)
