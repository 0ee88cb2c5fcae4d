"""Screen layout in relative units, rasterised at any pixel size, and hit-testing.

Every task uses the same arrangement: a square canvas on the left, a column (or two) of labelled
buttons on the right, and a status area of text lines under the canvas. Positions are fractions of
the screen, so one layout serves the small CPU default (160x128) and a GPU size (448x358) alike.
A GUI variant (:mod:`annobc.gui.variants`) moves the buttons left (the layout mirrored) or into
rows at the bottom (the status then in a column beside the canvas), reorders them, sizes them and
their gaps, and scales the font; the default variant is the arrangement above, pixel for pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from annobc.gui.font import GlyphAtlas
from annobc.gui.variants import UIVariant, get_variant

DEFAULT_SCREEN = (160, 128)  # (width, height) in pixels

# Relative geometry (fractions of width / height).
_MARGIN_X, _MARGIN_Y = 2 / 160, 2 / 128
_CANVAS_W, _CANVAS_H = 0.70, 0.875
_PANEL_X0, _PANEL_X1 = 118 / 160, 158 / 160
_BUTTON_MAX_H = 14 / 128
_BUTTON_GAP = 1 / 128
_CANVAS_PANEL_GAP = 4 / 160  # between the canvas and the button panel
_BOTTOM_STATUS_CHARS = 10  # the narrowest status column beside the canvas (bottom panel)

NONE, CANVAS = -1, 0  # hit-map codes; button i has code i + 1


@dataclass(frozen=True)
class Rect:
    """Half-open pixel rectangle [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def w(self) -> int:
        return self.x1 - self.x0

    @property
    def h(self) -> int:
        return self.y1 - self.y0

    def contains(self, x: int, y: int) -> bool:
        return self.x0 <= x < self.x1 and self.y0 <= y < self.y1


def font_scale(width: int, height: int) -> int:
    """Integer font scale: 1 at the default size, growing with the screen."""
    return max(1, min(width // DEFAULT_SCREEN[0], height // DEFAULT_SCREEN[1]))


class Layout:
    """Pixel rectangles of canvas, buttons and status for one screen size and button list, in one
    GUI variant (None: the default).

    ``panel`` is the region drawn in the panel colour, ``status_lines`` how many text lines the
    status area shows and ``status_wrap`` whether longer lines are word-wrapped onto the next.
    ``labels`` keeps the task's order (hit codes index it); ``order`` is the placement order.
    """

    def __init__(self, width: int, height: int, button_labels: Sequence[str],
                 variant: UIVariant | str | None = None):
        if width < 64 or height < 48:
            raise ValueError(f"screen must be at least 64x48 pixels, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        self.labels = tuple(button_labels)
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"button labels must be unique, got {self.labels}")
        self.variant = v = get_variant(variant)
        self.order = v.order(self.labels)
        base = font_scale(width, height)
        self.scale = base if v.font_scale == 1 else base * v.font_scale
        self.atlas = GlyphAtlas(self.scale, cache_size=0)  # geometry only: renders nothing
        self.status_wrap = v.status_wrap
        if v.panel == "bottom":
            self._bottom_layout()
        else:
            self._side_layout()
            if v.panel == "left":
                self._mirror()
        self.hit_map = self._hit_map()
        # The hit map again as bytes of code + 1, row by row, and the name of each code: indexing
        # bytes and a tuple is cheaper than indexing a numpy array (one byte a pixel).
        self._hit_names = (None, "canvas") + self.labels
        self._hit_codes = (self.hit_map + 1).astype(np.uint8).tobytes() if len(self.labels) < 255 else None

    # -- buttons beside the canvas ---------------------------------------------------------------
    def _side_layout(self) -> None:
        width, height, v = self.width, self.height, self.variant
        line_h = self.atlas.cell_h
        side = min(round(_CANVAS_W * width), round(_CANVAS_H * height))
        cx0, cy0 = round(_MARGIN_X * width), round(_MARGIN_Y * height)
        px0, px1 = round(_PANEL_X0 * width), round(_PANEL_X1 * width)
        cols = None
        if v.font_scale != 1 or v.status_lines != 2:
            # A larger font: room under the canvas for the status lines asked for, a panel wide
            # enough for the longest label in as few columns as fit; the canvas takes the rest.
            cols, side, px0, px1 = self._fit_panel(side, cx0, cy0, px0)
        self.canvas = Rect(cx0, cy0, cx0 + side, cy0 + side)
        self.status = Rect(cx0, self.canvas.y1 + 1, width - cx0, height)
        self.status_lines = max(1, (self.status.h - 1) // line_h)
        self.buttons = self._place_column(px0, px1, self.canvas.y0, self.canvas.y1, cols)
        xs = [r.x0 for r in self.buttons.values()]
        self.panel = Rect(min(xs) - 1, 0, width, height) if xs else None

    def _fit_panel(self, side: int, cx0: int, cy0: int, px0: int) -> tuple[int, int, int, int]:
        width, height, v, atlas = self.width, self.height, self.variant, self.atlas
        n = len(self.labels)
        gap = max(1, round(v.button_gap / 128 * height))
        min_h = atlas.cell_h + 3
        widest = max((atlas.ink_width(lb) for lb in self.labels), default=0) + 4
        px1 = width - cx0
        status_h = v.status_lines * atlas.cell_h + 1
        for cols in (1, 2, 3):
            x0 = min(px0, px1 - (cols * widest + (cols - 1) * gap))
            s = min(side, x0 - round(_CANVAS_PANEL_GAP * width) - cx0, height - cy0 - 1 - status_h)
            rows = -(-n // cols) if n else 1
            if s >= 16 and (s + gap) // rows - gap >= min_h:
                return cols, s, x0, px1
        raise ValueError(f"{n} buttons do not fit a {width}x{height} screen in variant "
                         f"{v.name!r}; use a larger screen")

    def _place_column(self, px0: int, px1: int, py0: int, py1: int,
                      cols: int | None = None) -> dict[str, Rect]:
        n = len(self.labels)
        if n == 0:
            return {}
        v = self.variant
        gap = max(1, round(v.button_gap / 128 * self.height))
        min_h = self.atlas.cell_h + 3
        bh_max = round(v.button_height / 128 * self.height)
        if not v.default_geometry:
            cols, gap = self._fit_column(px1 - px0, py1 - py0, gap, min_h, bh_max, cols)
        elif cols is None:
            cols = 1
            while (py1 - py0) // -(-n // cols) < min_h + gap and cols < 3:
                cols += 1
        rows = -(-n // cols)
        bh = min(bh_max, (py1 - py0 + gap) // rows - gap)
        bw = (px1 - px0 + gap) // cols - gap
        if bh < min_h or bw < self.atlas.cell_w + 2:
            raise ValueError(
                f"{n} buttons do not fit a {self.width}x{self.height} screen; use a larger screen")
        self._check_labels_fit(bw)
        rects = {}
        for i, label in enumerate(self.order):
            r, c = divmod(i, cols)
            x0, y0 = px0 + c * (bw + gap), py0 + r * (bh + gap)
            rects[label] = Rect(x0, y0, x0 + bw, y0 + bh)
        return rects

    def _fit_column(self, pw: int, ph: int, gap: int, min_h: int, bh_max: int,
                    cols: int | None) -> tuple[int, int]:
        """A variant's (columns, gap): the fewest columns that show every label whole, at the
        variant's gap or, where that leaves no room, the widest smaller one."""
        n = len(self.labels)
        widest = max(self.atlas.ink_width(lb) for lb in self.labels) + 2
        for g in range(gap, 0, -1):
            for c in ((cols,) if cols else (1, 2, 3)):
                rows = -(-n // c)
                bh = min(bh_max, (ph + g) // rows - g)
                if bh >= min_h and (pw + g) // c - g >= widest:
                    return c, g
        return cols or 1, gap  # fails with the usual message

    def _check_labels_fit(self, bw: int) -> None:
        # The default layout (and its re-coloured, re-ordered variants) keeps today's behaviour: a
        # label too long is cut. Any other variant must show every label whole.
        if self.variant.default_geometry:
            return
        for label in self.labels:
            if self.atlas.ink_width(label) > bw - 2:
                raise ValueError(f"button {label!r} does not fit its {bw}-pixel button in variant "
                                 f"{self.variant.name!r} on a {self.width}x{self.height} screen")

    def _mirror(self) -> None:
        """Left panel: the right-panel layout mirrored left to right."""
        w = self.width

        def m(r: Rect) -> Rect:
            return Rect(w - r.x1, r.y0, w - r.x0, r.y1)

        self.canvas, self.status = m(self.canvas), m(self.status)
        # Mirror the panel's place, not the reading order: in every row of buttons the labels
        # still run left to right in the variant's order.
        rows: dict[int, list[str]] = {}
        for label in self.order:
            rows.setdefault(self.buttons[label].y0, []).append(label)
        buttons = {}
        for labels in rows.values():
            rects = sorted((m(self.buttons[lb]) for lb in labels), key=lambda r: r.x0)
            buttons.update(zip(labels, rects))
        self.buttons = {lb: buttons[lb] for lb in self.labels}
        xs = [r.x1 for r in self.buttons.values()]
        self.panel = Rect(0, 0, max(xs) + 1, self.height) if xs else None

    # -- buttons under the canvas ----------------------------------------------------------------
    def _bottom_layout(self) -> None:
        width, height, v, atlas = self.width, self.height, self.variant, self.atlas
        mx, my = round(_MARGIN_X * width), round(_MARGIN_Y * height)
        gap = max(1, round(v.button_gap / 128 * height))
        min_h = atlas.cell_h + 3
        bh = max(min_h, min(round(v.button_height / 128 * height), min_h + 1))
        n = len(self.labels)
        strip_w = width - 2 * mx
        strip_y1 = height - my
        rows = _pack_rows([atlas.ink_width(lb) + 4 for lb in self.order], strip_w, gap) if n else []
        if any(sum(r) + gap * (len(r) - 1) > strip_w for r in rows):
            raise ValueError(f"a button label is wider than a {width}x{height} screen in variant "
                             f"{v.name!r}; use a larger screen")
        strip_y0 = strip_y1 - len(rows) * bh - max(0, len(rows) - 1) * gap if n else strip_y1
        status_min_w = _BOTTOM_STATUS_CHARS * atlas.cell_w + 2
        side = min(round(_CANVAS_H * height), strip_y0 - 2 - my, width - 2 * mx - 2 - status_min_w)
        if side < 16:
            raise ValueError(f"{n} buttons do not fit a {width}x{height} screen in variant "
                             f"{v.name!r}; use a larger screen")
        self.canvas = Rect(mx, my, mx + side, my + side)
        self.status = Rect(self.canvas.x1 + 2, my, width - mx, strip_y0 - 2)
        self.status_lines = max(1, (self.status.h - 1) // atlas.cell_h)
        self.buttons = {}
        labels = iter(self.order)
        for k, row in enumerate(rows):
            # The row's slack is shared out evenly, so that every row spans the strip.
            slack = strip_w - sum(row) - gap * (len(row) - 1)
            x0, y0 = mx, strip_y0 + k * (bh + gap)
            for j, w in enumerate(row):
                w += slack // len(row) + (1 if j < slack % len(row) else 0)
                self.buttons[next(labels)] = Rect(x0, y0, x0 + w, y0 + bh)
                x0 += w + gap
        self.panel = Rect(0, strip_y0 - 1, width, height) if n else None

    # -- hit-testing -----------------------------------------------------------------------------
    def _hit_map(self) -> np.ndarray:
        hm = np.full((self.height, self.width), NONE, dtype=np.int16)
        c = self.canvas
        hm[c.y0:c.y1, c.x0:c.x1] = CANVAS
        for i, label in enumerate(self.labels):
            r = self.buttons[label]
            hm[r.y0:r.y1, r.x0:r.x1] = i + 1
        return hm

    def hit(self, x: int, y: int) -> str | None:
        """Name of the element under pixel (x, y): a button label, 'canvas', or None."""
        if self._hit_codes is not None and 0 <= x < self.width and 0 <= y < self.height:
            try:
                return self._hit_names[self._hit_codes[y * self.width + x]]
            except TypeError:  # not integers: numpy's indexing below says what is wrong
                pass
        code = int(self.hit_map[y, x])  # what the list holds; negative indices wrap, as numpy's
        if code == NONE:
            return None
        if code == CANVAS:
            return "canvas"
        return self.labels[code - 1]


def _pack_rows(widths: list[int], strip_w: int, gap: int) -> list[list[int]]:
    """Button widths cut into as few rows as fit ``strip_w`` (in order), balanced: the fewest
    rows a greedy packing needs, then as even a count per row as still fits."""
    def fits(row):
        return sum(row) + gap * (len(row) - 1) <= strip_w

    n_rows, row = 1, []
    for w in widths:
        if row and not fits(row + [w]):
            n_rows, row = n_rows + 1, []
        row.append(w)
    for n in range(n_rows, len(widths) + 1):
        per = -(-len(widths) // n)
        rows = [widths[i:i + per] for i in range(0, len(widths), per)]
        if len(rows) <= n and all(fits(r) for r in rows):
            return rows
    return [[w] for w in widths]


class CanvasMapper:
    """Maps a task's data grid (h x w data pixels) onto the canvas rectangle and back.

    Data coordinates are continuous, with data pixel (i, j) centred at (u=j, v=i). When the canvas
    is as large as the data grid the mapping is the identity, which is the default screen's case.
    """

    def __init__(self, canvas: Rect, data_h: int, data_w: int):
        self.rect = canvas
        self.data_h, self.data_w = int(data_h), int(data_w)
        self.sx = self.data_w / canvas.w
        self.sy = self.data_h / canvas.h
        self.identity = canvas.w == self.data_w and canvas.h == self.data_h
        # Nearest data pixel for every canvas pixel, for upscaling whole images at once.
        self._iy = np.minimum(((np.arange(canvas.h) + 0.5) * self.sy).astype(np.intp), self.data_h - 1)
        self._ix = np.minimum(((np.arange(canvas.w) + 0.5) * self.sx).astype(np.intp), self.data_w - 1)
        # Runs of consecutive source columns (a canvas a little smaller than the data grid skips a
        # column now and then): a few slice copies beat a gather of 3-byte pixels.
        brk = np.flatnonzero(np.diff(self._ix) != 1) + 1
        starts, ends = np.concatenate([[0], brk]), np.concatenate([brk, [canvas.w]])
        self._runs = [(int(a), int(b), int(self._ix[a])) for a, b in zip(starts, ends)]
        self._ix_channels: dict[int, np.ndarray] = {}  # channels -> column index per value

    @property
    def pixel_size(self) -> float:
        """Canvas pixels per data pixel."""
        return 1.0 / self.sx

    def to_canvas_image(self, img: np.ndarray) -> np.ndarray:
        """Nearest-neighbour resample of a data-grid image (h, w, ...) to canvas pixels."""
        if self.identity:
            return img
        rows = img.take(self._iy, axis=0)
        if len(self._runs) > max(4, self.rect.w // 8):
            # Two 1-D takes give the same pixels as one 2-D fancy index, several times faster;
            # the columns taken as single values (each pixel's channels side by side) faster still.
            if rows.ndim == 3:
                c = rows.shape[2]
                cols = self._ix_channels.get(c)
                if cols is None:
                    cols = self._ix_channels[c] = (self._ix[:, None] * c + np.arange(c)).ravel()
                out = rows.reshape(rows.shape[0], -1).take(cols, axis=1)
                return out.reshape(rows.shape[0], len(self._ix), c)
            return rows.take(self._ix, axis=1)
        out = np.empty((self.rect.h, self.rect.w) + img.shape[2:], img.dtype)
        for a, b, src in self._runs:
            out[:, a:b] = rows[:, src:src + b - a]
        return out

    def to_data(self, x: int, y: int) -> tuple[float, float]:
        """Screen pixel -> data coordinates (u, v) of that pixel's centre."""
        return ((x - self.rect.x0 + 0.5) * self.sx - 0.5, (y - self.rect.y0 + 0.5) * self.sy - 0.5)

    def to_screen(self, u: float, v: float) -> tuple[int, int]:
        """Data coordinates -> the screen pixel whose centre is nearest, clipped to the canvas."""
        r = self.rect
        x = r.x0 + math.floor((u + 0.5) / self.sx)
        y = r.y0 + math.floor((v + 0.5) / self.sy)
        return (min(max(x, r.x0), r.x1 - 1), min(max(y, r.y0), r.y1 - 1))

    def to_canvas_px(self, u: float, v: float) -> tuple[int, int]:
        """Data coordinates -> pixel (x, y) inside the canvas image (not the screen)."""
        x, y = self.to_screen(u, v)
        return x - self.rect.x0, y - self.rect.y0
