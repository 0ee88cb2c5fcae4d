"""Themes are data: a named set of colours for every part of the screen."""

from __future__ import annotations

from dataclasses import dataclass, fields

Color = tuple[int, int, int]


@dataclass(frozen=True)
class Theme:
    name: str
    background: Color
    panel: Color
    button_face: Color
    button_border: Color
    button_text: Color
    selected_face: Color
    selected_text: Color
    status_background: Color
    status_text: Color
    canvas_border: Color

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


THEMES: dict[str, Theme] = {
    "dark": Theme(
        name="dark",
        background=(28, 30, 36),
        panel=(40, 43, 52),
        button_face=(70, 75, 90),
        button_border=(110, 116, 134),
        button_text=(235, 235, 235),
        selected_face=(220, 170, 40),
        selected_text=(20, 20, 20),
        status_background=(18, 19, 23),
        status_text=(160, 230, 160),
        canvas_border=(90, 95, 110),
    ),
    "light": Theme(
        name="light",
        background=(225, 225, 228),
        panel=(205, 207, 212),
        button_face=(245, 245, 247),
        button_border=(120, 122, 130),
        button_text=(20, 20, 24),
        selected_face=(40, 110, 220),
        selected_text=(255, 255, 255),
        status_background=(250, 250, 250),
        status_text=(20, 60, 20),
        canvas_border=(120, 122, 130),
    ),
    # Black and white with one saturated accent, as in accessibility themes: the largest contrast
    # between every text and its ground, and white borders around the buttons and the canvas.
    "high-contrast": Theme(
        name="high-contrast",
        background=(0, 0, 0),
        panel=(0, 0, 0),
        button_face=(0, 0, 0),
        button_border=(255, 255, 255),
        button_text=(255, 255, 255),
        selected_face=(255, 255, 0),
        selected_text=(0, 0, 0),
        status_background=(0, 0, 0),
        status_text=(255, 255, 255),
        canvas_border=(255, 255, 255),
    ),
}
DEFAULT_THEME = "dark"


def get_theme(name: str) -> Theme:
    try:
        return THEMES[name]
    except KeyError:
        raise ValueError(f"unknown theme {name!r}; known themes: {', '.join(sorted(THEMES))}") from None
