"""Screen layout in relative units, rasterised at any pixel size, and hit-testing.

Every task uses the same arrangement: a square canvas on the left, a column (or two) of labelled
buttons on the right, and a status area of text lines under the canvas. Positions are fractions of
the screen, so one layout serves the small CPU default (160x128) and a GPU size (448x358) alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from annobc.gui.font import CELL_H, CELL_W

DEFAULT_SCREEN = (160, 128)  # (width, height) in pixels

# Relative geometry (fractions of width / height).
_MARGIN_X, _MARGIN_Y = 2 / 160, 2 / 128
_CANVAS_W, _CANVAS_H = 0.70, 0.875
_PANEL_X0, _PANEL_X1 = 118 / 160, 158 / 160
_BUTTON_MAX_H = 14 / 128
_BUTTON_GAP = 1 / 128

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
    """Pixel rectangles of canvas, buttons and status for one screen size and button list."""

    def __init__(self, width: int, height: int, button_labels: Sequence[str]):
        if width < 64 or height < 48:
            raise ValueError(f"screen must be at least 64x48 pixels, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        self.labels = tuple(button_labels)
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"button labels must be unique, got {self.labels}")
        self.scale = font_scale(width, height)

        side = min(round(_CANVAS_W * width), round(_CANVAS_H * height))
        cx0, cy0 = round(_MARGIN_X * width), round(_MARGIN_Y * height)
        self.canvas = Rect(cx0, cy0, cx0 + side, cy0 + side)

        line_h = CELL_H * self.scale
        self.status = Rect(cx0, self.canvas.y1 + 1, width - cx0, height)
        self.status_lines = max(1, (self.status.h - 1) // line_h)

        self.buttons = self._place_buttons()
        self.hit_map = self._hit_map()

    def _place_buttons(self) -> dict[str, Rect]:
        n = len(self.labels)
        if n == 0:
            return {}
        px0, px1 = round(_PANEL_X0 * self.width), round(_PANEL_X1 * self.width)
        py0, py1 = self.canvas.y0, self.canvas.y1
        gap = max(1, round(_BUTTON_GAP * self.height))
        min_h = CELL_H * self.scale + 3
        cols = 1
        while (py1 - py0) // -(-n // cols) < min_h + gap and cols < 3:
            cols += 1
        rows = -(-n // cols)
        bh = min(round(_BUTTON_MAX_H * self.height), (py1 - py0 + gap) // rows - gap)
        bw = (px1 - px0 + gap) // cols - gap
        if bh < min_h or bw < CELL_W * self.scale + 2:
            raise ValueError(
                f"{n} buttons do not fit a {self.width}x{self.height} screen; use a larger screen")
        rects = {}
        for i, label in enumerate(self.labels):
            r, c = divmod(i, cols)
            x0, y0 = px0 + c * (bw + gap), py0 + r * (bh + gap)
            rects[label] = Rect(x0, y0, x0 + bw, y0 + bh)
        return rects

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
        code = int(self.hit_map[y, x])
        if code == NONE:
            return None
        if code == CANVAS:
            return "canvas"
        return self.labels[code - 1]


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

    @property
    def pixel_size(self) -> float:
        """Canvas pixels per data pixel."""
        return 1.0 / self.sx

    def to_canvas_image(self, img: np.ndarray) -> np.ndarray:
        """Nearest-neighbour resample of a data-grid image (h, w, ...) to canvas pixels."""
        if self.identity:
            return img
        return img[self._iy[:, None], self._ix[None, :]]

    def to_data(self, x: int, y: int) -> tuple[float, float]:
        """Screen pixel -> data coordinates (u, v) of that pixel's centre."""
        return ((x - self.rect.x0 + 0.5) * self.sx - 0.5, (y - self.rect.y0 + 0.5) * self.sy - 0.5)

    def to_screen(self, u: float, v: float) -> tuple[int, int]:
        """Data coordinates -> the screen pixel whose centre is nearest, clipped to the canvas."""
        x = self.rect.x0 + int(np.floor((u + 0.5) / self.sx))
        y = self.rect.y0 + int(np.floor((v + 0.5) / self.sy))
        return (min(max(x, self.rect.x0), self.rect.x1 - 1), min(max(y, self.rect.y0), self.rect.y1 - 1))

    def to_canvas_px(self, u: float, v: float) -> tuple[int, int]:
        """Data coordinates -> pixel (x, y) inside the canvas image (not the screen)."""
        x, y = self.to_screen(u, v)
        return x - self.rect.x0, y - self.rect.y0
