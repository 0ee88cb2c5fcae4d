"""Screen, layout, widgets, bitmap font, themes, GUI variants, rasteriser and hit-testing, all in numpy.

This layer knows nothing of tasks: a task hands it button labels, a canvas image, the set of
selected buttons and status lines.
"""

from annobc.gui.font import GlyphAtlas
from annobc.gui.layout import DEFAULT_SCREEN, CanvasMapper, Layout, Rect
from annobc.gui.raster import draw_line, draw_mark
from annobc.gui.screen import RENDERER_VERSION, FrameState, Screen
from annobc.gui.theme import DEFAULT_THEME, THEMES, Theme, get_theme
from annobc.gui.variants import (DEFAULT_VARIANT, UI_VARIANTS, UIVariant, get_variant,
                                 resolve_variants)

__all__ = [
    "CanvasMapper", "DEFAULT_SCREEN", "DEFAULT_THEME", "DEFAULT_VARIANT", "FrameState", "GlyphAtlas",
    "Layout", "RENDERER_VERSION", "Rect", "Screen", "THEMES", "Theme", "UIVariant", "UI_VARIANTS",
    "draw_line", "draw_mark", "get_theme", "get_variant", "resolve_variants",
]
