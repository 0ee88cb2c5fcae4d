"""The screen: composes precomputed layers into a frame.

Per frame the work is a copy of the static chrome, a paste of the (cached) canvas image, a paste of
the pre-rendered "selected" face for each highlighted button, and the status lines, each pasted
as a pre-rendered strip (text over the status background) cached per (line, text, colour).
Nothing here is drawn from scratch per frame.

:meth:`Screen.render_into` goes further for a frame buffer that still holds the last frame it drew
(a session's own buffer): it pastes the canvas and redraws only the buttons and status lines whose
state changed since, instead of copying the whole chrome first. Both paths give the same pixels.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from annobc.gui.font import GlyphAtlas, wrap_text
from annobc.gui.layout import Layout, Rect
from annobc.gui.raster import outline_rect
from annobc.gui.theme import Theme

RENDERER_VERSION = "1"  # bump whenever any pixel of any frame may change
_STRIP_CACHE = 4096  # status-line strips kept per screen


class FrameState:
    """What a frame buffer holds, as :meth:`Screen.render_into` last drew it.

    ``valid`` is False until the buffer holds a whole frame of that screen; set it False again
    whenever something else may have written into the buffer."""

    __slots__ = ("valid", "selected", "lines", "status", "canvas")

    def __init__(self):
        self.valid = False
        self.selected: frozenset = frozenset()
        self.lines: list = []
        self.status: tuple | None = None  # the (status, status_colors) the lines were drawn from
        self.canvas = None  # what the canvas region shows, as its drawer named it (None: unknown)

    def invalidate(self) -> None:
        self.valid = False


class Screen:
    def __init__(self, layout: Layout, theme: Theme):
        self.layout = layout
        self.theme = theme
        self.atlas = GlyphAtlas(layout.scale)
        self.chrome = self._draw_chrome()
        self.chrome.flags.writeable = False
        self._selected_faces = {label: self._button_face(r, label, selected=True)
                                for label, r in layout.buttons.items()}
        self._button_slices = {label: (slice(r.y0, r.y1), slice(r.x0, r.x1))
                               for label, r in layout.buttons.items()}
        c = layout.canvas
        self._canvas_slice = (slice(c.y0, c.y1), slice(c.x0, c.x1))
        # Status line i occupies rows _line_y[i] .. + cell_h, columns s.x0 + 1 .. s.x1.
        s = layout.status
        self._line_y = [s.y0 + 1 + i * self.atlas.cell_h for i in range(layout.status_lines)]
        self._line_x = (s.x0 + 1, s.x0 + 1 + max(0, s.w - 1))
        self._line_slices = [(slice(y, y + self.atlas.cell_h), slice(*self._line_x))
                             for y in self._line_y]
        self._wrap_chars = max(1, (s.w - 1 + self.atlas.spacing) // self.atlas.cell_w)
        self._strips: dict = {}
        self._wrapped: dict = {}

    # -- static layers -------------------------------------------------------------------------
    def _button_face(self, r: Rect, label: str, selected: bool) -> np.ndarray:
        t = self.theme
        face = np.empty((r.h, r.w, 3), np.uint8)
        face[:] = t.selected_face if selected else t.button_face
        outline_rect(face, 0, 0, r.w, r.h, t.button_border)
        mask = self.atlas.render(label)
        # Trim the trailing spacing column/row so the label is optically centred.
        s = self.atlas.spacing
        mask = mask[: mask.shape[0] - s, : max(0, mask.shape[1] - s)]
        mh, mw = mask.shape
        mw = min(mw, r.w - 2)
        y0, x0 = (r.h - mh) // 2, (r.w - mw) // 2
        face[y0:y0 + mh, x0:x0 + mw][mask[:, :mw]] = t.selected_text if selected else t.button_text
        face.flags.writeable = False
        return face

    def _draw_chrome(self) -> np.ndarray:
        L, t = self.layout, self.theme
        img = np.empty((L.height, L.width, 3), np.uint8)
        img[:] = t.background
        p = L.panel
        if p is not None:
            img[p.y0:p.y1, max(p.x0, 0):p.x1] = t.panel
        s = L.status
        img[s.y0:s.y1, s.x0:s.x1] = t.status_background
        c = L.canvas
        if c.x0 > 0 and c.y0 > 0:
            outline_rect(img, c.x0 - 1, c.y0 - 1, c.x1 + 1, c.y1 + 1, t.canvas_border)
        for label, r in L.buttons.items():
            img[r.y0:r.y1, r.x0:r.x1] = self._button_face(r, label, selected=False)
        return img

    # -- status lines --------------------------------------------------------------------------
    def status_slots(self, status: Sequence[str],
                     status_colors: Sequence[tuple[int, int, int] | None] = ()) -> list:
        """The (text, colour) shown on each status line (None where a line is blank): the task's
        lines in order, word-wrapped where the layout wraps, cut at the lines there are."""
        n = len(self._line_y)
        out: list = []
        wrap = self.layout.status_wrap
        for i, line in enumerate(status):
            if len(out) >= n:
                break
            color = status_colors[i] if i < len(status_colors) else None
            if color is not None and type(color) is not tuple:
                color = tuple(int(c) for c in color)
            if wrap and len(line) > self._wrap_chars:
                pieces = self._wrapped.get(line)
                if pieces is None:
                    if len(self._wrapped) >= _STRIP_CACHE:
                        self._wrapped.clear()
                    pieces = self._wrapped[line] = wrap_text(line, self._wrap_chars)
                out.extend((p, color) for p in pieces[: n - len(out)])
            else:
                out.append((line, color))
        out.extend([None] * (n - len(out)))
        return out

    def _strip(self, i: int, slot) -> np.ndarray:
        """Status line ``i`` showing ``slot`` (text, colour) over the chrome, as a pasteable strip."""
        key = (i, slot)
        strip = self._strips.get(key)
        if strip is not None:
            return strip
        ys, xs = self._line_slices[i]
        strip = self.chrome[ys, xs].copy()
        if slot is not None:
            text, color = slot
            mask = self.atlas.render(text)
            mw = min(mask.shape[1], strip.shape[1])
            mh = min(mask.shape[0], strip.shape[0])
            strip[:mh, :mw][mask[:mh, :mw]] = self.theme.status_text if color is None else color
        strip.flags.writeable = False
        if len(self._strips) >= _STRIP_CACHE:
            self._strips.clear()
        self._strips[key] = strip
        return strip

    # -- per frame -----------------------------------------------------------------------------
    def canvas_view(self, frame: np.ndarray) -> np.ndarray:
        """The canvas region of a frame, as a writable view (for overlays)."""
        return frame[self._canvas_slice]

    def render(self, canvas_img: np.ndarray, selected: Iterable[str], status: Sequence[str],
               out: np.ndarray | None = None,
               status_colors: Sequence[tuple[int, int, int] | None] = ()) -> np.ndarray:
        """A whole frame (into ``out`` if given): chrome, canvas, selected buttons, status."""
        if out is None:
            frame = self.chrome.copy()
        else:
            frame = out
            np.copyto(frame, self.chrome)
        frame[self._canvas_slice] = canvas_img
        for label in selected:
            frame[self._button_slices[label]] = self._selected_faces[label]
        for i, slot in enumerate(self.status_slots(status, status_colors)):
            if slot is not None:
                frame[self._line_slices[i]] = self._strip(i, slot)
        return frame

    def render_into(self, frame: np.ndarray, state: FrameState, canvas_img: np.ndarray,
                    selected: Iterable[str], status: Sequence[str],
                    status_colors: Sequence[tuple[int, int, int] | None] = ()) -> np.ndarray:
        """The frame :meth:`render` draws, drawn into ``frame``, which holds what ``state`` says:
        only what changed since is redrawn (the canvas always is, since overlays go on it; a
        ``canvas_img`` of None leaves the canvas region as it is, for a caller that knows it holds
        this frame's canvas already)."""
        if not state.valid:
            np.copyto(frame, self.chrome)
            state.selected = frozenset()
            state.lines = [None] * len(self._line_y)
            state.status = None
            state.canvas = None
            state.valid = True
            if canvas_img is None:
                raise ValueError("a frame drawn afresh needs its canvas image")
        if canvas_img is not None:
            frame[self._canvas_slice] = canvas_img
            state.canvas = None  # the caller names it once its overlays are on
        sel = frozenset(selected)
        old = state.selected
        if sel != old:
            for label in old - sel:
                sl = self._button_slices[label]
                frame[sl] = self.chrome[sl]
            for label in sel - old:
                frame[self._button_slices[label]] = self._selected_faces[label]
            state.selected = sel
        # Most clicks leave the text as it was: then no line is looked at. (Kept as tuples of
        # plain values, so that the comparison is by value and a later change to a list shows.)
        colors = status_colors
        if colors and not all(c is None or type(c) is tuple for c in colors):
            colors = (c if c is None or type(c) is tuple else tuple(int(v) for v in c) for c in colors)
        text = (tuple(status), tuple(colors))
        if state.status != text:
            lines = state.lines
            for i, slot in enumerate(self.status_slots(*text)):
                if lines[i] != slot:
                    frame[self._line_slices[i]] = self._strip(i, slot)
                    lines[i] = slot
            state.status = text
        return frame
