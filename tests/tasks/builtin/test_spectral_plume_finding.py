"""spectral_plume_finding: its GUI rules, what the bands show, its score, its annotator, and its
policy from states it did not make."""

import math

import numpy as np
import pytest

from annobc.tasks import Session, get_task_class, run_annotator
from annobc.tasks.builtin.spectral_plume_finding import PlumeAnnotator, SpectralPlumeFinding
from annobc.tasks.stats import episode_stats

TASK = "spectral_plume_finding"


def goto(s, band):
    while s.task.band != band:
        s.click_button("BAND+" if band > s.task.band else "BAND-")


def test_band_navigation_is_clamped_and_shown():
    s = Session(TASK, 0)
    t = s.task
    assert 32 <= t.n_bands <= 64 and t.band == 0
    s.click_button("BAND-")
    s.click_button("BAND-10")
    assert t.band == 0
    s.click_button("BAND+10")
    s.click_button("BAND+")
    assert t.band == 11 and t.position() == pytest.approx(11 / (t.n_bands - 1))
    assert t.status()[0].startswith(f"BAND 11/{t.n_bands - 1}  {t.wavelengths[11]}NM  RATIO OFF")
    for _ in range(10):
        s.click_button("BAND+10")
    assert t.band == t.n_bands - 1
    s.click_button("BAND-10")
    assert t.band == t.n_bands - 11


def test_ratio_toggles_view_button_and_status():
    s = Session(TASK, 1)
    t = s.task
    goto(s, t.plume.peak)
    plain = s.render()
    s.click_button("RATIO")
    assert t.ratio and t.selected() == ("RATIO",)
    ref = t.ref_band()
    assert t.status()[0].endswith(f"RATIO ON /B{ref}")
    # The reference band of a window band lies outside the window.
    w0, w1 = t.plume.window
    assert not (w0 <= ref <= w1) and ref == t.plume.peak - t.params.ratio_offset
    assert not np.array_equal(plain, s.render())
    s.click_button("RATIO")
    assert not t.ratio and t.selected() == () and "RATIO OFF" in t.status()[0]
    assert np.array_equal(plain, s.render())
    # The first bands divide by a band above them.
    assert t.ref_band(0) == t.params.ratio_offset


def test_plume_absorbs_only_in_its_window_and_stands_out_in_ratio():
    s = Session(TASK, 2)
    t = s.task
    pl = t.plume
    w0, w1 = pl.window
    assert 3 <= w1 - w0 + 1 <= 5 and w0 <= pl.peak <= w1
    inside = t.absorb[w0:w1 + 1]
    outside = np.concatenate([t.absorb[:w0], t.absorb[w1 + 1:]])
    assert inside.min() > 2 * outside.max()
    assert t.absorb[0] < 0.01 * t.absorb[pl.peak]

    def plume_contrast(band, ratio):
        t.band, t.ratio = band, ratio
        img = t.view_image()[:, :, 2].astype(float)
        x, y = pl.axis_point(6.0)
        near = img[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2].mean()
        return near - np.median(img)

    assert plume_contrast(pl.peak, True) < -40  # a dark plume in the ratio view
    assert plume_contrast(pl.peak, True) < plume_contrast(pl.peak, False)
    assert abs(plume_contrast(1, True)) < 15  # nothing far from the window


def test_bands_are_rendered_lazily_and_cached():
    s = Session(TASK, 3)
    t = s.task
    assert not t._rad and not t._view_cache
    s.render()
    assert set(t._view_cache) == {(0, False)}
    first = t.view_image()
    assert t.view_image() is first
    s.click_button("RATIO")
    s.render()
    assert set(t._rad) == {0, t.ref_band(0)}


def test_perfect_mark_scores_one_and_done_ends():
    s = Session(TASK, 4)
    t = s.task
    goto(s, t.plume.peak)
    res = s.click_data(t.plume.x, t.plume.y)
    assert res.effect.annotated and not res.effect.wrong and t.n_wrong() == 0
    assert t.score() == (1.0, True)
    assert t.status()[1] == f"SOURCE MARKED ON BAND {t.plume.peak}"
    s.click_button("DONE")
    assert s.done


def test_mark_on_a_band_outside_the_window_is_a_mistake():
    s = Session(TASK, 5)
    t = s.task
    goto(s, t.plume.window[0] - 1)
    res = s.click_data(t.plume.x, t.plume.y)
    assert res.effect.wrong and t.n_wrong() == 1
    assert t.score() == (0.5, False)


@pytest.mark.parametrize("which", ["pad", "far_end"])
def test_bright_pad_or_wrong_end_is_a_mistake_and_undo_removes_it(which):
    s = Session(TASK, 6)
    t = s.task
    pl = t.plume
    goto(s, pl.peak)
    u, v = t.pads[0] if which == "pad" else pl.far_end
    assert math.hypot(u - pl.x, v - pl.y) > 8
    res = s.click_data(u, v)
    assert res.effect.wrong and t.n_wrong() == 1
    assert t.score() == (0.5, False)
    res = s.click_button("UNDO")
    assert res.removed_mistake and t.n_wrong() == 0 and t.ann is None
    assert t.score() == (0.0, False) and t.status()[1] == "SOURCE NOT MARKED"


def test_a_new_mark_replaces_the_old_one_and_undo_restores_it():
    s = Session(TASK, 7)
    t = s.task
    pl = t.plume
    goto(s, pl.peak)
    s.click_data(*pl.far_end)
    assert t.n_wrong() == 1
    s.click_data(pl.x, pl.y)
    assert t.n_wrong() == 0 and t.score() == (1.0, True)
    s.click_button("UNDO")
    assert t.n_wrong() == 1 and math.hypot(t.ann[0] - pl.far_end[0], t.ann[1] - pl.far_end[1]) < 1
    # Navigation and the view are not undone.
    assert t.band == pl.peak


def test_mark_is_drawn_on_every_band():
    s = Session(TASK, 8)
    t = s.task
    goto(s, t.plume.peak)
    before = s.render()
    s.click_data(t.plume.x, t.plume.y)
    for band in (t.plume.peak, 0):
        goto(s, band)
        x, y = s.mapper.to_screen(*t.ann[:2])
        assert tuple(s.render()[y, x]) == (255, 215, 0)
    assert not np.array_equal(before, s.render())


def test_ratio_offset_must_exceed_the_window():
    with pytest.raises(ValueError, match="ratio_offset"):
        Session(TASK, 0, {"ratio_offset": 5})


def test_annotator_scans_coarse_then_fine_and_marks_on_a_window_band():
    rec = run_annotator(TASK, 9)
    assert rec.success
    steps = rec.steps
    assert steps[0].element == "BAND+10" and steps[0].phase == "survey"
    marks = [i for i, st in enumerate(steps) if st.category == "place"]
    before = steps[:marks[0]]
    assert sum(st.element in ("BAND+", "BAND-") for st in before) >= 10  # a fine scan
    assert sum(st.element == "RATIO" for st in before) == 3  # on, off (survey), on (fine scan)
    s = Session(TASK, 9)
    w0, w1 = s.task.plume.window
    n = s.task.n_bands - 1
    assert all(w0 <= round(steps[i].position * n) <= w1 for i in marks)


def test_personas_differ():
    cls = get_task_class(TASK)
    assert list(cls.personas)[0] == "default" and len(cls.personas) >= 3
    stats = {p: episode_stats([run_annotator(TASK, s, p) for s in range(8)]) for p in cls.personas}
    assert stats["default"]["mean_length"] > stats["quick"]["mean_length"]
    assert stats["quick"]["action_mix"]["view"] > stats["default"]["action_mix"]["view"]  # blinks
    assert stats["careless"]["mistake_rate"] > stats["default"]["mistake_rate"]


def test_default_turns_where_the_screen_shows_marks_on_the_window_top_and_done_at_its_neighbour():
    for seed in range(12):
        rec = run_annotator(TASK, seed)
        s = Session(TASK, seed)
        t = s.task
        B, (w0, w1) = t.n_bands, t.plume.window
        bands = [round(st.position * (B - 1)) for st in rec.steps]
        elements = [st.element for st in rec.steps]
        top = bands.index(B - 1)  # the fine scan goes up to the last band, shown in the status
        assert elements[top] == "RATIO" and all(e == "BAND+" for e in elements[top - 5:top])
        mark = elements.index("canvas")
        # Down band by band in RATIO, to the first band where the plume shows strongly.
        assert all(e == "BAND-" for e in elements[top + 1:mark]) and bands[mark] == w1
        assert all(t.absorb[b] < 0.4 * t.plume.depth for b in bands[top:mark])
        assert "RATIO" not in elements[top + 1:]  # no blinks, no ratio tour
        if rec.steps[mark].is_mistake:
            continue
        # Then the neighbouring window band and DONE there.
        assert elements[mark + 1:] == ["BAND-", "DONE"] and w0 <= bands[mark + 1] <= w1
        assert rec.success


def _annotator(seed, persona="default"):
    s = Session(TASK, seed)
    persona = SpectralPlumeFinding.personas[persona]
    return s, PlumeAnnotator(s, persona, np.random.default_rng(seed))


def _element(s, intent):
    return s.hit(intent.x, intent.y)[0]


def test_its_wrong_mark_stands_until_the_neighbouring_band_shows_it():
    found = 0
    for seed in range(120):
        rec = run_annotator(TASK, seed)
        steps = rec.steps
        first = next((i for i, st in enumerate(steps) if st.is_mistake), None)
        if first is None or not rec.success:
            continue
        found += 1
        # One step to the neighbouring window band, then UNDO there.
        assert steps[first + 1].element in ("BAND+", "BAND-") and steps[first + 1].phase == "verify"
        assert steps[first + 2].element == "UNDO" and steps[first + 2].is_correction
        assert steps[first + 2].position != steps[first].position
    assert found >= 3


def test_taking_over_it_removes_a_wrong_mark_then_starts_its_survey():
    s, ann = _annotator(3)
    t = s.task
    for label in ("BAND+10", "BAND+10", "BAND+", "RATIO"):
        s.click_button(label)
    s.click_data(20, 20)
    assert t.n_wrong() == 1
    clicks = []
    for i in ann.resume():
        clicks.append(_element(s, i))
        s.step(i.x, i.y)
    # UNDO, RATIO off for the plain survey, back to the first band, up in coarse steps.
    assert clicks[:5] == ["UNDO", "RATIO", "BAND-10", "BAND-10", "BAND-10"]
    assert clicks[5] == "BAND+10"
    assert s.done and t.score() == (1.0, True)


def test_its_mark_is_no_longer_left_once_another_hand_changed_it():
    p = SpectralPlumeFinding.personas["default"]
    rate = p.bright_rate + p.wrong_end_rate
    seed = next(sd for sd in range(300) if _annotator(sd)[1].draw(("mark",)).random() < rate)
    s, ann = _annotator(seed)
    t = s.task
    intents = ann.script()
    while t.ann is None:
        i = next(intents)
        s.step(i.x, i.y)
    assert t.n_wrong() == 1
    s.click_data(t.plume.x + 20, t.plume.y)  # another wrong mark, on the same band
    # Before the neighbouring band, it removes the other hand's mark and then its own too.
    for _ in range(2):
        i = next(intents)
        assert _element(s, i) == "UNDO"
        s.step(i.x, i.y)
    assert t.ann is None
    for i in intents:
        s.step(i.x, i.y)
    assert s.done and t.score() == (1.0, True)


def test_steps_on_the_plume_record_its_source_and_band_offset():
    rec = run_annotator(TASK, 10)
    s = Session(TASK, 10)
    pl = s.task.plume
    xy = s.mapper.to_screen(pl.x, pl.y)
    on_plume = [st for st in rec.steps if st.target == 0]
    assert on_plume and all((st.target_x, st.target_y) == xy for st in on_plume)
    n = s.task.n_bands - 1
    assert all(st.target_offset == round(st.position * n) - pl.peak for st in on_plume)
