"""GUI variants at the gui layer: the table, layouts of every variant, the larger font, wrapping, and
the incremental renderer drawing exactly what a whole render draws."""

import hashlib

import numpy as np
import pytest

from annobc.gui import (THEMES, UI_VARIANTS, FrameState, GlyphAtlas, Layout, Screen, UIVariant,
                        get_theme, get_variant, resolve_variants)
from annobc.gui.font import wrap_text

LABEL_SETS = [
    ("+Z", "-Z", "MIP", "UNDO", "DONE"),
    ("NOSE", "TAIL", "FL", "FR", "HL", "HR", "PREV", "NEXT", "UNDO", "DONE"),
    ("+Z", "-Z", "SPHERE", "ELLIPSOID", "TORUS", "2 SPHERES", "UNDO", "DONE"),
    ("BAND+", "BAND-", "BAND+10", "BAND-10", "RATIO", "UNDO", "DONE"),
]


def _canvas(L: Layout, k: int = 0) -> np.ndarray:
    c = L.canvas
    yy, xx = np.mgrid[0:c.h, 0:c.w]
    return np.stack([(xx * 2 + k) % 256, (yy * 3) % 256, (xx + yy + 7 * k) % 256], -1).astype(np.uint8)


def test_the_table_has_eleven_variants_over_every_dimension():
    assert len(UI_VARIANTS) >= 11
    vs = list(UI_VARIANTS.values())
    assert {v.panel for v in vs} == {"right", "left", "bottom"}
    assert {v.theme for v in vs} >= {"dark", "light", "high-contrast"}
    assert len({v.button_order for v in vs}) >= 2
    assert len({(v.button_height, v.button_gap) for v in vs}) >= 3
    assert len({v.font_scale for v in vs}) >= 2
    assert all(name == v.name for name, v in UI_VARIANTS.items())
    d = get_variant("default")
    assert get_variant(None) is d and d.theme == "dark" and d.panel == "right" and d.default_geometry
    assert d.button_order == "task" and d.font_scale == 1
    assert "high-contrast" in THEMES


def test_unknown_variant_lists_known_and_all_resolves_to_every_name():
    with pytest.raises(ValueError, match="known variants: default"):
        get_variant("neon")
    assert resolve_variants("all") == tuple(UI_VARIANTS)
    assert resolve_variants("left, bottom") == ("left", "bottom")
    with pytest.raises(ValueError, match="unknown GUI variant"):
        resolve_variants("left,nope")
    with pytest.raises(ValueError, match="panel"):
        UIVariant("x", panel="top")


def test_default_layout_is_todays_layout():
    # The default 160x128 layout, spelled out: datasets and replays depend on every pixel.
    L = Layout(160, 128, LABEL_SETS[0], "default")
    assert (L.canvas.x0, L.canvas.y0, L.canvas.x1, L.canvas.y1) == (2, 2, 114, 114)
    assert (L.status.x0, L.status.y0, L.status.x1, L.status.y1) == (2, 115, 158, 128)
    assert L.status_lines == 2 and not L.status_wrap
    assert [(r.x0, r.y0, r.x1, r.y1) for r in L.buttons.values()] == [
        (118, 2, 158, 16), (118, 17, 158, 31), (118, 32, 158, 46), (118, 47, 158, 61),
        (118, 62, 158, 76)]
    assert np.array_equal(Layout(160, 128, LABEL_SETS[0]).hit_map, L.hit_map)


# sha256 prefixes of frames drawn by the renderer before variants existed (same inputs).
GOLDEN = {((160, 128), "dark"): "32acea399b04830b", ((160, 128), "light"): "972bb68476ac79e2",
          ((448, 358), "dark"): "cba87cdd47e61b7b", ((200, 120), "light"): "38c22793c82f4487"}


@pytest.mark.parametrize("size,theme", list(GOLDEN))
def test_default_frames_are_bit_identical_to_the_renderer_before_variants(size, theme):
    L = Layout(*size, LABEL_SETS[0])
    s = Screen(L, get_theme(theme))
    status = ("FIND YELLOW  Z 26/30", "MARKERS 15  MIP OFF", "THIRD LINE", "A" * 60)
    f = s.render(_canvas(L), ("MIP", "DONE"), status, None, ((255, 0, 0), None))
    assert hashlib.sha256(f.tobytes()).hexdigest()[:16] == GOLDEN[(size, theme)]
    g = np.zeros_like(f)
    s.render_into(g, FrameState(), _canvas(L), ("MIP", "DONE"), status, ((255, 0, 0), None))
    assert np.array_equal(f, g)


@pytest.mark.parametrize("name", list(UI_VARIANTS))
@pytest.mark.parametrize("size", [(160, 128), (448, 358)])
def test_every_variant_lays_out_every_label_set(name, size):
    for labels in LABEL_SETS:
        L = Layout(*size, labels, name)
        w, h = size
        c = L.canvas
        assert c.w == c.h >= 64 and 0 <= c.x0 and c.x1 <= w and 0 <= c.y0 and c.y1 <= h
        assert L.hit(c.x0, c.y0) == "canvas" and L.hit(c.x1 - 1, c.y1 - 1) == "canvas"
        s = L.status
        assert L.status_lines >= 2 and s.w >= 40
        for i, label in enumerate(labels):
            r = L.buttons[label]
            assert 0 <= r.x0 < r.x1 <= w and 0 <= r.y0 < r.y1 <= h
            assert (L.hit_map == i + 1).sum() == r.w * r.h  # overlapped by nothing
            assert L.hit(r.x0 + r.w // 2, r.y0 + r.h // 2) == label
            assert L.atlas.ink_width(label) <= r.w - 2  # the whole label shows
            # buttons never cover the canvas or the status text
            assert r.x1 <= c.x0 or r.x0 >= c.x1 or r.y1 <= c.y0 or r.y0 >= c.y1
            assert r.x1 <= s.x0 or r.x0 >= s.x1 or r.y1 <= s.y0 or r.y0 >= s.y1
        # placement follows the variant's order in reading order (rows, then left to right)
        placed = sorted(labels, key=lambda lb: (L.buttons[lb].y0, L.buttons[lb].x0))
        assert tuple(placed) == L.order == get_variant(name).order(labels)


def test_panel_sides_put_the_buttons_where_they_say():
    labels = LABEL_SETS[0]
    right, left, bottom = (Layout(160, 128, labels, v) for v in ("default", "left", "bottom"))
    assert all(r.x0 >= right.canvas.x1 for r in right.buttons.values())
    assert all(r.x1 <= left.canvas.x0 for r in left.buttons.values())
    assert all(r.y0 >= bottom.canvas.y1 for r in bottom.buttons.values())
    assert bottom.status.x0 >= bottom.canvas.x1  # the status column beside the canvas
    # left is right mirrored
    assert left.canvas.x0 == 160 - right.canvas.x1 and left.canvas.w == right.canvas.w
    # one row of five buttons under a 112-pixel canvas: the data grid is not resampled
    assert bottom.canvas.w == 112 and len({r.y0 for r in bottom.buttons.values()}) == 1


def test_larger_font_glyphs_and_wrapping():
    a = GlyphAtlas(1.4)
    assert (a.glyph_w, a.glyph_h, a.cell_w, a.cell_h, a.spacing) == (4, 7, 5, 8, 1)
    m = a.render("AB")
    assert m.shape == (8, 10) and not m[7].any() and not m[:, 4].any()
    assert (GlyphAtlas(1).render("AB") == GlyphAtlas(1.0).render("AB")).all()
    assert isinstance(GlyphAtlas(2.0).scale, int)
    assert wrap_text("IN FRAME 6/6: NOSE TAIL", 10) == ["IN FRAME", "6/6: NOSE", "TAIL"]
    assert wrap_text("SHORT", 10) == ["SHORT"]
    assert wrap_text("ABCDEFGHIJKL", 5) == ["ABCDE", "FGHIJ", "KL"]
    L = Layout(160, 128, LABEL_SETS[2], "large-font")
    assert L.status_wrap and L.status_lines >= 3 and L.canvas.w < 112


def test_wrapped_status_lines_keep_their_colours():
    L = Layout(160, 128, LABEL_SETS[0], "bottom")
    s = Screen(L, get_theme("dark"))
    slots = s.status_slots(("IN FRAME 6/6: NOSE TAIL FL FR", "B"), ((255, 0, 0), None))
    shown = [x for x in slots if x is not None]
    assert len(shown) >= 3 and " ".join(t for t, _ in shown[:-1]) == "IN FRAME 6/6: NOSE TAIL FL FR"
    assert all(c == (255, 0, 0) for _, c in shown[:-1]) and shown[-1] == ("B", None)
    assert all(len(t) * s.atlas.cell_w <= L.status.w for t, _ in shown)


@pytest.mark.parametrize("name", ["default", "left-light", "bottom-compact", "large-font"])
def test_incremental_rendering_draws_what_a_whole_render_draws(name):
    rng = np.random.default_rng(0)
    labels = LABEL_SETS[1]
    L = Layout(160, 128, labels, name)
    s = Screen(L, get_theme(get_variant(name).theme))
    buf, state = np.empty((128, 160, 3), np.uint8), FrameState()
    lines = ["FRAME 1/10  KEY HR  ALL 60/60", "IN FRAME 6/6: NOSE TAIL FL FR HL HR", "X", ""]
    for k in range(60):
        sel = tuple(rng.choice(labels, size=rng.integers(0, 3), replace=False))
        status = tuple(rng.choice(lines, size=rng.integers(0, 4)))
        colors = tuple((int(rng.integers(256)), 0, 0) if rng.random() < 0.3 else None
                       for _ in status)
        canvas = _canvas(L, k)
        want = s.render(canvas, sel, status, None, colors)
        got = s.render_into(buf, state, canvas, sel, status, colors)
        assert got is buf and np.array_equal(want, buf), k
    state.invalidate()
    buf[:] = 0
    s.render_into(buf, state, _canvas(L, 0), (), ("A",))
    assert np.array_equal(buf, s.render(_canvas(L, 0), (), ("A",)))


def test_theme_colours_show_in_the_chrome():
    L = Layout(160, 128, LABEL_SETS[0], "high-contrast")
    s = Screen(L, get_theme("high-contrast"))
    c = L.canvas
    assert tuple(s.chrome[c.y0 - 1, c.x0]) == (255, 255, 255)  # white canvas border
    assert tuple(s.chrome[0, 0]) == (0, 0, 0)
