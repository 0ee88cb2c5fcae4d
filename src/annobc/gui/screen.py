"""The screen: composes precomputed layers into a frame.

Per frame the work is a copy of the static chrome, a paste of the (cached) canvas image, a paste of
the pre-rendered "selected" face for each highlighted button, and the status lines blitted from the
glyph atlas. Nothing here is drawn from scratch per frame.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from annobc.gui.font import GlyphAtlas
from annobc.gui.layout import Layout, Rect
from annobc.gui.raster import outline_rect
from annobc.gui.theme import Theme

RENDERER_VERSION = "1"  # bump whenever any pixel of any frame may change


class Screen:
    def __init__(self, layout: Layout, theme: Theme):
        self.layout = layout
        self.theme = theme
        self.atlas = GlyphAtlas(layout.scale)
        self.chrome = self._draw_chrome()
        self._selected_faces = {label: self._button_face(r, label, selected=True)
                                for label, r in layout.buttons.items()}
        c = layout.canvas
        self._canvas_slice = (slice(c.y0, c.y1), slice(c.x0, c.x1))

    # -- static layers -------------------------------------------------------------------------
    def _button_face(self, r: Rect, label: str, selected: bool) -> np.ndarray:
        t = self.theme
        face = np.empty((r.h, r.w, 3), np.uint8)
        face[:] = t.selected_face if selected else t.button_face
        outline_rect(face, 0, 0, r.w, r.h, t.button_border)
        mask = self.atlas.render(label)
        # Trim the trailing spacing column/row so the label is optically centred.
        s = self.atlas.scale
        mask = mask[: mask.shape[0] - s, : max(0, mask.shape[1] - s)]
        mh, mw = mask.shape
        mw = min(mw, r.w - 2)
        y0, x0 = (r.h - mh) // 2, (r.w - mw) // 2
        face[y0:y0 + mh, x0:x0 + mw][mask[:, :mw]] = t.selected_text if selected else t.button_text
        return face

    def _draw_chrome(self) -> np.ndarray:
        L, t = self.layout, self.theme
        img = np.empty((L.height, L.width, 3), np.uint8)
        img[:] = t.background
        if L.buttons:
            xs = [r.x0 for r in L.buttons.values()]
            img[:, min(xs) - 1:] = t.panel
        s = L.status
        img[s.y0:s.y1, s.x0:s.x1] = t.status_background
        c = L.canvas
        if c.x0 > 0 and c.y0 > 0:
            outline_rect(img, c.x0 - 1, c.y0 - 1, c.x1 + 1, c.y1 + 1, t.canvas_border)
        for label, r in L.buttons.items():
            img[r.y0:r.y1, r.x0:r.x1] = self._button_face(r, label, selected=False)
        return img

    # -- per frame -----------------------------------------------------------------------------
    def canvas_view(self, frame: np.ndarray) -> np.ndarray:
        """The canvas region of a frame, as a writable view (for overlays)."""
        return frame[self._canvas_slice]

    def render(self, canvas_img: np.ndarray, selected: Iterable[str], status: Sequence[str],
               out: np.ndarray | None = None,
               status_colors: Sequence[tuple[int, int, int] | None] = ()) -> np.ndarray:
        L = self.layout
        if out is None:
            frame = self.chrome.copy()
        else:
            frame = out
            np.copyto(frame, self.chrome)
        frame[self._canvas_slice] = canvas_img
        for label in selected:
            r = L.buttons[label]
            frame[r.y0:r.y1, r.x0:r.x1] = self._selected_faces[label]
        s = L.status
        y = s.y0 + 1
        for i, line in enumerate(status[: L.status_lines]):
            mask = self.atlas.render(line)
            mh = mask.shape[0]
            mw = min(mask.shape[1], s.w - 1)
            color = status_colors[i] if i < len(status_colors) else None
            frame[y:y + mh, s.x0 + 1:s.x0 + 1 + mw][mask[:, :mw]] = (
                self.theme.status_text if color is None else color)
            y += mh
        return frame
