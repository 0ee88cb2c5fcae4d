"""Screen, layout, widgets, bitmap font, themes, rasteriser and hit-testing, all in numpy.

This layer knows nothing of tasks: a task hands it button labels, a canvas image, the set of
selected buttons and status lines.
"""

from annobc.gui.font import GlyphAtlas
from annobc.gui.layout import DEFAULT_SCREEN, CanvasMapper, Layout, Rect
from annobc.gui.raster import draw_line, draw_mark
from annobc.gui.screen import RENDERER_VERSION, Screen
from annobc.gui.theme import DEFAULT_THEME, THEMES, Theme, get_theme

__all__ = [
    "CanvasMapper", "DEFAULT_SCREEN", "DEFAULT_THEME", "GlyphAtlas", "Layout", "RENDERER_VERSION",
    "Rect", "Screen", "THEMES", "Theme", "draw_line", "draw_mark", "get_theme",
]
