"""GUI variants are data: named combinations of panel side, theme, button order, button size and
spacing, and font scale, shared by every task (see docs/tasks/variants.md).

A variant changes where things are and how they look, never what a task does: the same scene,
buttons and status text, laid out and coloured another way. ``"default"`` is the layout and theme
every dataset was recorded in before variants existed, pixel for pixel.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

from annobc.gui.theme import THEMES

PANEL_SIDES = ("right", "left", "bottom")
BUTTON_ORDERS = ("task", "reversed", "alphabetical")
DEFAULT_VARIANT = "default"


@dataclass(frozen=True)
class UIVariant:
    """One GUI variant. Sizes are in pixels of the 160x128 default screen and scale with it.

    - ``panel``: where the buttons are: ``right`` of the canvas (the default), ``left`` of it (the
      whole screen mirrored), or in rows at the ``bottom`` (the status lines then sit in a column
      right of the canvas).
    - ``theme``: a name in :data:`annobc.gui.THEMES`.
    - ``button_order``: ``task`` (the order the task declares), ``reversed``, or ``alphabetical``.
    - ``button_height``: the tallest a button may be (it shrinks to fit many buttons);
      ``button_gap``: pixels between buttons.
    - ``font_scale``: glyph size relative to the screen's font (1: the 3x5 font at 160x128; 1.4:
      4x7 glyphs). A larger font needs a wider panel and taller status lines, so the canvas
      shrinks and the task's data grid is resampled onto it (nearest neighbour).
    - ``status_lines``: status lines the layout keeps room for (at least).
    - ``status_wrap``: word-wrap status lines longer than the status area (else they are cut).
    """

    name: str
    panel: str = "right"
    theme: str = "dark"
    button_order: str = "task"
    button_height: int = 14
    button_gap: int = 1
    font_scale: float = 1.0
    status_lines: int = 2
    status_wrap: bool = False
    description: str = ""

    def __post_init__(self):
        if self.panel not in PANEL_SIDES:
            raise ValueError(f"variant {self.name!r}: panel must be one of {PANEL_SIDES}")
        if self.theme not in THEMES:
            raise ValueError(f"variant {self.name!r}: unknown theme {self.theme!r}; known: "
                             f"{', '.join(sorted(THEMES))}")
        if self.button_order not in BUTTON_ORDERS:
            raise ValueError(f"variant {self.name!r}: button_order must be one of {BUTTON_ORDERS}")
        if self.button_height < 4 or self.button_gap < 1:
            raise ValueError(f"variant {self.name!r}: button_height >= 4 and button_gap >= 1")
        if not 1.0 <= self.font_scale <= 3.0:
            raise ValueError(f"variant {self.name!r}: font_scale must be in [1, 3]")
        if self.status_lines < 1:
            raise ValueError(f"variant {self.name!r}: status_lines must be >= 1")

    def order(self, labels: Sequence[str]) -> tuple[str, ...]:
        """``labels`` in the order this variant places them."""
        labels = tuple(labels)
        if self.button_order == "reversed":
            return labels[::-1]
        if self.button_order == "alphabetical":
            return tuple(sorted(labels))
        return labels

    @property
    def default_geometry(self) -> bool:
        """Laid out exactly as the default variant (only the theme or the button order differ)."""
        d = UI_VARIANTS[DEFAULT_VARIANT]
        return all(getattr(self, f) == getattr(d, f) for f in
                   ("panel", "button_height", "button_gap", "font_scale", "status_lines",
                    "status_wrap"))

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _table(*variants: UIVariant) -> dict[str, UIVariant]:
    return {v.name: v for v in variants}


# The one table of variants. Add new ones at the end; never change one that datasets were
# recorded in (a replay would no longer show what was recorded).
UI_VARIANTS: dict[str, UIVariant] = _table(
    UIVariant("default", description="today's layout: buttons right, dark theme"),
    UIVariant("light", theme="light", description="the default layout in the light theme"),
    UIVariant("high-contrast", theme="high-contrast",
              description="the default layout in black and white"),
    UIVariant("reversed", button_order="reversed", description="buttons in reverse order"),
    UIVariant("left", panel="left", description="buttons left of the canvas (mirrored layout)"),
    UIVariant("left-light", panel="left", theme="light", button_order="alphabetical",
              description="buttons left, light theme, alphabetical order"),
    UIVariant("bottom", panel="bottom", status_wrap=True,
              description="buttons in rows under the canvas, status beside it"),
    UIVariant("bottom-light", panel="bottom", theme="light", button_order="reversed",
              status_wrap=True, description="buttons under the canvas, light, reversed"),
    UIVariant("compact", button_height=9, button_gap=1,
              description="small buttons packed at the top of the panel"),
    UIVariant("spaced", button_height=18, button_gap=4, theme="light",
              description="tall buttons with wide gaps, light theme"),
    UIVariant("large-font", font_scale=1.4, status_lines=3, status_wrap=True,
              description="4x7 glyphs: wider panel, smaller canvas"),
    UIVariant("left-large-font", panel="left", theme="high-contrast", font_scale=1.4,
              status_lines=3, status_wrap=True, button_order="alphabetical",
              description="buttons left, large font, high contrast, alphabetical"),
    UIVariant("bottom-compact", panel="bottom", theme="high-contrast", button_height=9,
              button_gap=2, button_order="reversed", status_wrap=True,
              description="small buttons under the canvas, high contrast, reversed"),
)


def get_variant(name: "str | UIVariant | None") -> UIVariant:
    """A variant by name (None: the default); a :class:`UIVariant` is returned as it is."""
    if name is None:
        return UI_VARIANTS[DEFAULT_VARIANT]
    if isinstance(name, UIVariant):
        return name
    try:
        return UI_VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown GUI variant {name!r}; known variants: "
                         f"{', '.join(UI_VARIANTS)}") from None


def resolve_variants(spec: str) -> tuple[str, ...]:
    """``"all"`` -> every variant name; ``"a,b"`` -> those (checked); ``"a"`` -> (a,)."""
    if spec == "all":
        return tuple(UI_VARIANTS)
    names = tuple(s.strip() for s in spec.split(",") if s.strip())
    if not names:
        raise ValueError("no GUI variant given")
    for n in names:
        get_variant(n)
    return names
