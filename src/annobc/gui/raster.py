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
    ys, xs = np.asarray(ys), np.asarray(xs)
    if ys.dtype == np.intp and xs.dtype == np.intp:
        # One unsigned comparison per axis: a negative index wraps to a huge one.
        keep = (ys.view(np.uintp) < h) & (xs.view(np.uintp) < w)
    else:
        keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    if not keep.all():
        ys, xs = ys[keep], xs[keep]
    _put(img, ys, xs, color, alpha)


def grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    """(h, w) -> (h, w, 3) with the grey in every channel: what ``np.repeat(grey[:, :, None], 3,
    axis=2)`` gives, in half its time (numpy copies over a last axis 3 long slowly)."""
    out = np.empty(grey.shape + (3,), grey.dtype)
    out[..., 0] = grey
    out[..., 1] = grey
    out[..., 2] = grey
    return out


def interleave(planes: np.ndarray) -> np.ndarray:
    """(3, h, w) -> (h, w, 3), the same values: for images drawn channel by channel."""
    out = np.empty(planes.shape[1:] + (3,), planes.dtype)
    out[..., 0] = planes[0]
    out[..., 1] = planes[1]
    out[..., 2] = planes[2]
    return out


def _put(img: np.ndarray, ys: np.ndarray, xs: np.ndarray, color: Color, alpha: float) -> None:
    """Set or blend pixels (ys, xs), all inside ``img``."""
    if alpha >= 1.0:
        img[ys, xs] = color
        return
    try:
        lut = _blend_lut(tuple(color), float(alpha))
    except TypeError:  # an unhashable colour
        old = img[ys, xs].astype(np.float32)
        img[ys, xs] = (old * (1.0 - alpha) + np.asarray(color, np.float32) * alpha + 0.5).astype(np.uint8)
        return
    img[ys, xs] = lut[img[ys, xs], _CHANNELS]


_CHANNELS = np.arange(3)


def blend_pixels(old: np.ndarray, color: Color, alpha: float) -> np.ndarray:
    """(n, 3) uint8 pixels blended with ``color`` by ``alpha``: the bytes of
    ``(old.astype(np.float32) * (1 - alpha) + np.float32(color) * alpha + 0.5).astype(np.uint8)``,
    by a table look-up."""
    return _blend_lut(tuple(color), float(alpha))[old, _CHANNELS]


@lru_cache(maxsize=1024)
def _blend_lut(color: Color, alpha: float) -> np.ndarray:
    """(256, 3): the blend of every old channel value with ``color``, computed by the per-pixel
    float32 formula itself (so a table look-up gives the same bytes)."""
    old = np.repeat(np.arange(256, dtype=np.float32)[:, None], 3, axis=1)
    lut = (old * (1.0 - alpha) + np.asarray(color, np.float32) * alpha + 0.5).astype(np.uint8)
    lut.flags.writeable = False
    return lut


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


def mark_pixels(kind: str, r: int, x: int, y: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The pixels (ys, xs) that :func:`draw_mark` sets for a mark at (x, y) in an h x w image
    (read-only; kept, as marks stay put from frame to frame). Tasks that draw many marks of one
    colour concatenate these and assign once."""
    try:
        return _placed(kind, r, x, y, h, w)
    except TypeError:  # unhashable coordinates (e.g. 0-d arrays): no cache
        return _placed.__wrapped__(kind, r, x, y, h, w)


@lru_cache(maxsize=8192)
def _placed(kind: str, r: int, x: int, y: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The pixels of a mark at (x, y) inside an h x w image (marks stay put from frame to frame,
    so their clipped pixel lists are kept)."""
    dy, dx = mark_offsets(kind, r)
    ys, xs = dy + y, dx + x
    keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    if not keep.all():
        ys, xs = ys[keep], xs[keep]
    ys.flags.writeable = xs.flags.writeable = False
    return ys, xs


def draw_mark(img: np.ndarray, x: int, y: int, color: Color, kind: str = "cross", r: int = 2,
              alpha: float = 1.0) -> None:
    """Draw a marker of ``kind`` ('cross', 'x', 'ring', 'disc', 'square') centred at (x, y)."""
    h, w = img.shape[:2]
    try:
        ys, xs = _placed(kind, r, x, y, h, w)
    except TypeError:  # unhashable coordinates (e.g. 0-d arrays): no cache
        dy, dx = mark_offsets(kind, r)
        paint(img, dy + y, dx + x, color, alpha)
        return
    _put(img, ys, xs, color, alpha)


def line_pixels(x0: int, y0: int, x1: int, y1: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """The pixels (ys, xs) that :func:`draw_line` sets in an h x w image (read-only)."""
    try:
        return _line(x0, y0, x1, y1, h, w)
    except TypeError:  # unhashable coordinates: no cache
        return _line.__wrapped__(x0, y0, x1, y1, h, w)


@lru_cache(maxsize=8192)
def _line(x0: int, y0: int, x1: int, y1: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.round(np.linspace(x0, x1, n)).astype(int)
    ys = np.round(np.linspace(y0, y1, n)).astype(int)
    keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    ys, xs = ys[keep], xs[keep]
    ys.flags.writeable = xs.flags.writeable = False
    return ys, xs


def draw_line(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, color: Color,
              alpha: float = 1.0) -> None:
    h, w = img.shape[:2]
    try:
        ys, xs = _line(x0, y0, x1, y1, h, w)
    except TypeError:  # unhashable coordinates: no cache
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        xs = np.round(np.linspace(x0, x1, n)).astype(int)
        ys = np.round(np.linspace(y0, y1, n)).astype(int)
        paint(img, ys, xs, color, alpha)
        return
    _put(img, ys, xs, color, alpha)


def fill_rect(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
    img[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = color


def outline_rect(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, color: Color) -> None:
    img[y0, x0:x1] = color
    img[y1 - 1, x0:x1] = color
    img[y0:y1, x0] = color
    img[y0:y1, x1 - 1] = color
