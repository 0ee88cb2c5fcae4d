"""Small numpy drawing primitives used for canvas overlays (markers, nodes, edges, clicks).

All functions draw in place into an (H, W, 3) uint8 image, clip at its borders, and take integer
pixel coordinates. They touch only the few pixels they draw, because they run on every rendered
frame.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

Color = tuple[int, int, int]


def paint(img: np.ndarray, ys: np.ndarray, xs: np.ndarray, color: Color, alpha: float = 1.0) -> None:
    """Set pixels (ys, xs) to ``color`` (blended by ``alpha``), skipping those outside the image.

    Tasks that draw many marks concatenate their offsets (``mark_offsets``) and paint once."""
    h, w = img.shape[:2]
    keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    ys, xs = ys[keep], xs[keep]
    if alpha >= 1.0:
        img[ys, xs] = color
    else:
        old = img[ys, xs].astype(np.float32)
        img[ys, xs] = (old * (1.0 - alpha) + np.asarray(color, np.float32) * alpha + 0.5).astype(np.uint8)


def _cross(r: int):
    k = np.arange(-r, r + 1)
    z = np.zeros_like(k)
    return np.concatenate([k, z]), np.concatenate([z, k])


def _xcross(r: int):
    k = np.arange(-r, r + 1)
    return np.concatenate([k, k]), np.concatenate([k, -k])


def _ring(r: int):
    t = np.linspace(0.0, 2 * np.pi, max(8, int(8 * r)), endpoint=False)
    pts = np.unique(np.stack([np.round(r * np.sin(t)), np.round(r * np.cos(t))], 1).astype(int), axis=0)
    return pts[:, 0], pts[:, 1]


def _disc(r: int):
    k = np.arange(-r, r + 1)
    dy, dx = np.meshgrid(k, k, indexing="ij")
    m = dy * dy + dx * dx <= r * r + r
    return dy[m], dx[m]


def _square(r: int):
    k = np.arange(-r, r + 1)
    dy, dx = np.meshgrid(k, k, indexing="ij")
    m = (np.abs(dy) == r) | (np.abs(dx) == r)
    return dy[m], dx[m]


_SHAPES = {"cross": _cross, "x": _xcross, "ring": _ring, "disc": _disc, "square": _square}


@lru_cache(maxsize=256)
def mark_offsets(kind: str, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel offsets (dy, dx) of a marker of ``kind`` and radius ``r`` (unique, read-only)."""
    try:
        shape = _SHAPES[kind]
    except KeyError:
        raise ValueError(f"unknown marker kind {kind!r}; known: {', '.join(_SHAPES)}") from None
    dy, dx = shape(r)
    pts = np.unique(np.stack([dy, dx], 1).astype(np.intp), axis=0)
    dy, dx = pts[:, 0].copy(), pts[:, 1].copy()
    dy.flags.writeable = dx.flags.writeable = False
    return dy, dx


def draw_mark(img: np.ndarray, x: int, y: int, color: Color, kind: str = "cross", r: int = 2,
              alpha: float = 1.0) -> None:
    """Draw a marker of ``kind`` ('cross', 'x', 'ring', 'disc', 'square') centred at (x, y)."""
    dy, dx = mark_offsets(kind, r)
    paint(img, dy + y, dx + x, color, alpha)


def draw_line(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, color: Color,
              alpha: float = 1.0) -> None:
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.round(np.linspace(x0, x1, n)).astype(int)
    ys = np.round(np.linspace(y0, y1, n)).astype(int)
    paint(img, ys, xs, color, alpha)


def fill_rect(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
    img[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = color


def outline_rect(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
    img[y0, x0:x1] = color
    img[y1 - 1, x0:x1] = color
    img[y0:y1, x0] = color
    img[y0:y1, x1 - 1] = color
