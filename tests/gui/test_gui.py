import numpy as np
import pytest

from annobc.gui import CanvasMapper, GlyphAtlas, Layout, Screen, get_theme, THEMES
from annobc.gui.font import CELL_H, CELL_W

LABELS = ("+Z", "-Z", "MIP", "UNDO", "DONE")


@pytest.mark.parametrize("size", [(160, 128), (320, 256), (448, 358), (200, 120)])
def test_layout_elements_inside_screen_and_disjoint(size):
    L = Layout(*size, LABELS)
    hm = L.hit_map
    assert hm.shape == (size[1], size[0])
    for label in LABELS:
        r = L.buttons[label]
        assert 0 <= r.x0 < r.x1 <= size[0] and 0 <= r.y0 < r.y1 <= size[1]
        assert L.hit(r.x0 + r.w // 2, r.y0 + r.h // 2) == label
        assert (hm == LABELS.index(label) + 1).sum() == r.w * r.h  # not overlapped by anything
    c = L.canvas
    assert c.w == c.h and L.hit(c.x0, c.y0) == "canvas" and L.hit(c.x1 - 1, c.y1 - 1) == "canvas"
    assert L.hit(c.x1, c.y0) != "canvas"
    assert L.status.y0 >= c.y1


def test_layout_is_resolution_independent():
    a, b = Layout(160, 128, LABELS), Layout(320, 256, LABELS)
    for label in LABELS:
        ra, rb = a.buttons[label], b.buttons[label]
        assert abs(rb.x0 - 2 * ra.x0) <= 2 and abs(rb.y0 - 2 * ra.y0) <= 2
    assert b.scale == 2 and a.scale == 1


def test_many_buttons_wrap_into_columns_and_too_many_fail_clearly():
    labels = [f"B{i}" for i in range(16)]
    L = Layout(160, 128, labels)
    assert len({r.x0 for r in L.buttons.values()}) == 2
    with pytest.raises(ValueError, match="do not fit"):
        Layout(160, 128, [f"B{i}" for i in range(60)])
    with pytest.raises(ValueError, match="unique"):
        Layout(160, 128, ["A", "A"])


def test_font_renders_fixed_cells_and_caches():
    atlas = GlyphAtlas(2)
    m = atlas.render("Z 12/31")
    assert m.shape == (CELL_H * 2, 7 * CELL_W * 2) and m.dtype == bool
    assert atlas.render("Z 12/31") is m
    assert not atlas.render(" ").any()
    # Different characters have different ink.
    assert (atlas.render("M") != atlas.render("N")).any()


def test_canvas_mapper_round_trip():
    L = Layout(448, 358, LABELS)
    m = CanvasMapper(L.canvas, 112, 112)
    for u, v in [(0, 0), (55.0, 17.0), (111, 111)]:
        x, y = m.to_screen(u, v)
        u2, v2 = m.to_data(x, y)
        assert abs(u2 - u) <= m.sx / 2 + 1e-9 and abs(v2 - v) <= m.sy / 2 + 1e-9
    ident = CanvasMapper(Layout(160, 128, LABELS).canvas, 112, 112)
    assert ident.identity and ident.to_data(2, 2) == (0.0, 0.0)
    img = np.arange(112 * 112 * 3, dtype=np.uint8).reshape(112, 112, 3)
    assert m.to_canvas_image(img).shape == (L.canvas.h, L.canvas.w, 3)


def test_screen_render_composes_layers():
    L = Layout(160, 128, LABELS)
    s = Screen(L, get_theme("dark"))
    canvas = np.full((L.canvas.h, L.canvas.w, 3), 77, np.uint8)
    f1 = s.render(canvas, (), ("HELLO",))
    f2 = s.render(canvas, ("MIP",), ("HELLO",))
    r = L.buttons["MIP"]
    assert (f1[L.canvas.y0:L.canvas.y1, L.canvas.x0:L.canvas.x1] == 77).all()
    assert not np.array_equal(f1[r.y0:r.y1, r.x0:r.x1], f2[r.y0:r.y1, r.x0:r.x1])
    outside = np.ones(f1.shape[:2], bool)
    outside[r.y0:r.y1, r.x0:r.x1] = False
    assert np.array_equal(f1[outside], f2[outside])
    f3 = s.render(canvas, (), ("WORLD",))
    st = L.status
    assert not np.array_equal(f1[st.y0:st.y1], f3[st.y0:st.y1])
    out = np.empty_like(f1)
    assert s.render(canvas, (), ("HELLO",), out=out) is out and np.array_equal(out, f1)


def test_unknown_theme_lists_known():
    with pytest.raises(ValueError, match="known themes"):
        get_theme("neon")
    assert {"dark", "light"} <= set(THEMES)
