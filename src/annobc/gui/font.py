"""A 3x5 bitmap font, rasterised into a glyph atlas at an integer scale.

The font is upper-case only: GUI labels and status lines are short and upper-case in the
annotation tools this package imitates, and a 3x5 cell keeps a 40-character status line inside a
160-pixel screen. Unknown characters render as a hollow box so that a missing glyph is visible.
"""

from __future__ import annotations

import numpy as np

GLYPH_W, GLYPH_H = 3, 5
# One column of spacing between glyphs and one row between lines.
CELL_W, CELL_H = GLYPH_W + 1, GLYPH_H + 1

_GLYPHS: dict[str, str] = {
    " ": "... ... ... ... ...",
    "A": ".#. #.# ### #.# #.#",
    "B": "##. #.# ##. #.# ##.",
    "C": ".## #.. #.. #.. .##",
    "D": "##. #.# #.# #.# ##.",
    "E": "### #.. ##. #.. ###",
    "F": "### #.. ##. #.. #..",
    "G": ".## #.. #.# #.# .##",
    "H": "#.# #.# ### #.# #.#",
    "I": "### .#. .#. .#. ###",
    "J": "..# ..# ..# #.# .#.",
    "K": "#.# #.# ##. #.# #.#",
    "L": "#.. #.. #.. #.. ###",
    "M": "#.# ### ### #.# #.#",
    "N": "##. #.# #.# #.# #.#",
    "O": ".#. #.# #.# #.# .#.",
    "P": "##. #.# ##. #.. #..",
    "Q": ".#. #.# #.# ### .##",
    "R": "##. #.# ##. #.# #.#",
    "S": ".## #.. .#. ..# ##.",
    "T": "### .#. .#. .#. .#.",
    "U": "#.# #.# #.# #.# ###",
    "V": "#.# #.# #.# #.# .#.",
    "W": "#.# #.# ### ### #.#",
    "X": "#.# #.# .#. #.# #.#",
    "Y": "#.# #.# .#. .#. .#.",
    "Z": "### ..# .#. #.. ###",
    "0": "### #.# #.# #.# ###",
    "1": ".#. ##. .#. .#. ###",
    "2": "##. ..# .#. #.. ###",
    "3": "##. ..# .#. ..# ##.",
    "4": "#.# #.# ### ..# ..#",
    "5": "### #.. ##. ..# ##.",
    "6": ".## #.. ### #.# ###",
    "7": "### ..# .#. .#. .#.",
    "8": "### #.# ### #.# ###",
    "9": "### #.# ### ..# ##.",
    "+": "... .#. ### .#. ...",
    "-": "... ... ### ... ...",
    ".": "... ... ... ... .#.",
    ",": "... ... ... .#. #..",
    ":": "... .#. ... .#. ...",
    "/": "..# ..# .#. #.. #..",
    "=": "... ### ... ### ...",
    "%": "#.# ..# .#. #.. #.#",
    "(": ".#. #.. #.. #.. .#.",
    ")": ".#. ..# ..# ..# .#.",
    "<": "..# .#. #.. .#. ..#",
    ">": "#.. .#. ..# .#. #..",
    "^": ".#. #.# ... ... ...",
    "_": "... ... ... ... ###",
    "#": "#.# ### #.# ### #.#",
    "!": ".#. .#. .#. ... .#.",
    "?": "##. ..# .#. ... .#.",
    "'": ".#. .#. ... ... ...",
    "*": "... #.# .#. #.# ...",
    "|": ".#. .#. .#. .#. .#.",
    "[": "##. #.. #.. #.. ##.",
    "]": ".## ..# ..# ..# .##",
}
_MISSING = "### #.# #.# #.# ###"


def _bitmap(rows: str) -> np.ndarray:
    return np.array([[c == "#" for c in row] for row in rows.split()], dtype=bool)


class GlyphAtlas:
    """All glyphs rasterised at one integer scale, indexed by character code.

    ``render(text)`` returns a boolean mask of shape (CELL_H * scale, len(text) * CELL_W * scale):
    True where ink is. Masks are cached per string because status lines repeat a lot.
    """

    def __init__(self, scale: int = 1, cache_size: int = 4096):
        if scale < 1:
            raise ValueError(f"font scale must be >= 1, got {scale}")
        self.scale = scale
        self.cell_w = CELL_W * scale
        self.cell_h = CELL_H * scale
        # Index 0 is the "missing glyph" box; codes 1..255 map Latin-1 characters.
        self._code = np.zeros(256, dtype=np.int64)
        bitmaps = [_bitmap(_MISSING)]
        for ch, rows in _GLYPHS.items():
            self._code[ord(ch)] = len(bitmaps)
            bitmaps.append(_bitmap(rows))
        cells = np.zeros((len(bitmaps), CELL_H, CELL_W), dtype=bool)
        for i, bm in enumerate(bitmaps):
            cells[i, :GLYPH_H, :GLYPH_W] = bm
        # Nearest-neighbour upscale of every cell at once.
        self._cells = cells.repeat(scale, axis=1).repeat(scale, axis=2)
        self._cache: dict[str, np.ndarray] = {}
        self._cache_size = cache_size

    def text_width(self, text: str) -> int:
        return len(text) * self.cell_w

    def render(self, text: str) -> np.ndarray:
        mask = self._cache.get(text)
        if mask is not None:
            return mask
        raw = np.frombuffer(text.upper().encode("latin-1", errors="replace"), dtype=np.uint8)
        cells = self._cells[self._code[raw]]  # (n, ch, cw)
        n, ch, cw = cells.shape
        mask = cells.transpose(1, 0, 2).reshape(ch, n * cw)  # (ch, n*cw): glyphs side by side
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[text] = mask
        return mask
