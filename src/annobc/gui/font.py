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
    """All glyphs rasterised at one scale, indexed by character code.

    ``render(text)`` returns a boolean mask of shape (cell_h, len(text) * cell_w): True where ink
    is. Masks are cached per string because status lines repeat a lot.

    An integer ``scale`` s repeats every font pixel s x s times: cells of (CELL_W * s, CELL_H * s)
    with s columns and rows of spacing. A fractional scale f (a GUI variant's larger font) resamples
    the 3x5 glyphs nearest-neighbour to round(3f) x round(5f) pixels, with round(f) of spacing.
    """

    def __init__(self, scale: float = 1, cache_size: int = 4096):
        if scale < 1:
            raise ValueError(f"font scale must be >= 1, got {scale}")
        if float(scale).is_integer():
            scale = int(scale)
        self.scale = scale
        self.spacing = _round(scale)
        self.glyph_w, self.glyph_h = _round(GLYPH_W * scale), _round(GLYPH_H * scale)
        self.cell_w = self.glyph_w + self.spacing
        self.cell_h = self.glyph_h + self.spacing
        # Index 0 is the "missing glyph" box; codes 1..255 map Latin-1 characters.
        self._code = np.zeros(256, dtype=np.int64)
        bitmaps = [_bitmap(_MISSING)]
        for ch, rows in _GLYPHS.items():
            self._code[ord(ch)] = len(bitmaps)
            bitmaps.append(_bitmap(rows))
        glyphs = np.stack(bitmaps)  # (n, GLYPH_H, GLYPH_W)
        if isinstance(scale, int):
            # Nearest-neighbour upscale of every glyph at once.
            glyphs = glyphs.repeat(scale, axis=1).repeat(scale, axis=2)
        else:
            iy = np.minimum(((np.arange(self.glyph_h) + 0.5) * GLYPH_H / self.glyph_h).astype(int),
                            GLYPH_H - 1)
            ix = np.minimum(((np.arange(self.glyph_w) + 0.5) * GLYPH_W / self.glyph_w).astype(int),
                            GLYPH_W - 1)
            glyphs = glyphs[:, iy[:, None], ix[None, :]]
        self._cells = np.zeros((len(bitmaps), self.cell_h, self.cell_w), dtype=bool)
        self._cells[:, :self.glyph_h, :self.glyph_w] = glyphs
        self._cache: dict[str, np.ndarray] = {}
        self._cache_size = cache_size

    def text_width(self, text: str) -> int:
        return len(text) * self.cell_w

    def ink_width(self, text: str) -> int:
        """Width of ``text`` without its trailing spacing column(s)."""
        return max(0, len(text) * self.cell_w - self.spacing)

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


def _round(v: float) -> int:
    """Round half up (Python's round() rounds half to even)."""
    return int(np.floor(v + 0.5))


def wrap_text(text: str, width: int) -> list[str]:
    """Greedy word wrap of ``text`` into lines of at most ``width`` characters (runs of spaces
    separate words; a word longer than a line is cut into pieces). An empty text is one empty line."""
    width = max(1, int(width))
    if len(text) <= width:
        return [text]
    lines: list[str] = []
    line = ""
    for word in text.split():
        while len(word) > width:
            if line:
                lines.append(line)
                line = ""
            lines.append(word[:width])
            word = word[width:]
        if not word:
            continue
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line += " " + word
        else:
            lines.append(line)
            line = word
    if line or not lines:
        lines.append(line)
    return lines
