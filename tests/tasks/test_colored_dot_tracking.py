"""colored_dot_tracking: its GUI rules, its score, and the human ranges of its default persona."""

import pytest

from annobc.tasks import Session, run_annotator
from annobc.tasks.stats import episode_stats

TASK = "colored_dot_tracking"


def test_z_navigation_is_clamped_and_mip_toggles():
    s = Session(TASK, 0)
    s.click_button("-Z")
    assert s.task.z == 0
    for _ in range(100):
        s.click_button("+Z")
    assert s.task.z == s.task.n_slices - 1
    s.click_button("MIP")
    assert s.task.mip and s.task.selected() == ("MIP",)
    assert "MIP ON" in s.task.status()[1]


def test_perfect_markers_score_one_and_wrong_slice_is_a_mistake():
    s = Session(TASK, 1)
    t = s.task
    dots = sorted(t.targets, key=lambda d: d.peak)
    first = dots[0]
    while t.z < first.peak - 1:
        s.click_button("+Z")
    res = s.click_data(first.x, first.y)  # one slice short
    assert res.effect.annotated and res.effect.wrong and t.n_wrong() == 1
    res = s.click_button("UNDO")
    assert res.removed_mistake and t.n_wrong() == 0 and len(t.ann) == 0
    for d in dots:
        while t.z < d.peak:
            s.click_button("+Z")
        assert not s.click_data(d.x, d.y).effect.wrong
    assert t.score() == (1.0, True)
    s.click_button("DONE")
    assert s.done


def test_distractor_and_missing_dots_lower_f1():
    s = Session(TASK, 2)
    t = s.task
    d = t.distractors[0]
    while t.z < d.peak:
        s.click_button("+Z")
    assert s.click_data(d.x, d.y).effect.wrong
    score, success = t.score()
    assert score == 0.0 and not success


def test_requested_colour_is_on_screen_in_that_colour():
    from annobc.tasks.colored_dot_tracking import COLORS

    s = Session(TASK, 3)
    assert s.task.status()[0].startswith(f"FIND {s.task.color}")
    frame = s.render()
    st = s.layout.status
    line_h = (st.y1 - st.y0) // s.layout.status_lines
    first = frame[st.y0:st.y0 + line_h, st.x0:st.x1].reshape(-1, 3)
    second = frame[st.y0 + line_h:st.y1, st.x0:st.x1].reshape(-1, 3)
    colour = tuple(COLORS[s.task.color])
    assert (first == colour).all(1).sum() > 20  # the first line's text is in the requested colour
    assert not (second == colour).all(1).any()  # the second line keeps the theme's text colour


def test_default_persona_inside_every_human_range():
    recs = [run_annotator(TASK, seed) for seed in range(200)]
    stats = episode_stats(recs)
    bad = {k: v for k, v in stats["reference"].items() if not v["inside"]}
    assert not bad, bad
    assert len(stats["reference"]) == 6
    assert 12 <= stats["placements_per_episode"] <= 20  # the study's ~16 placements


@pytest.mark.parametrize("persona", ["nearest", "careless"])
def test_other_personas_run(persona):
    rec = run_annotator(TASK, 0, persona)
    assert rec.done and len(rec) > 20


@pytest.mark.parametrize("seed", range(6))
def test_annotator_takes_over_from_any_state_and_succeeds(seed):
    """resume() is the expert of takeover episodes: from a state full of someone else's clicks
    (markers on distractors, on wrong slices, twice on a dot, MIP left on) it must still finish."""
    import numpy as np

    from annobc.tasks.episode import annotator_rng

    s = Session(TASK, seed, {"n_targets": [4, 8]})
    t = s.task
    rng = np.random.default_rng(seed)
    for _ in range(int(rng.integers(0, 40))):
        r = rng.random()
        if r < 0.5:
            s.click_button("+Z")
        elif r < 0.6:
            s.click_button("-Z")
        elif r < 0.7:
            s.click_button("MIP")
        else:  # a marker on some dot, or on background, on whatever slice this is
            d = (t.targets + t.distractors)[int(rng.integers(len(t.targets) + len(t.distractors)))]
            s.click_data(d.x + rng.normal(0, 2), d.y + rng.normal(0, 2))
    cls = s.task_cls
    expert = cls.Annotator(s, cls.personas["default"], annotator_rng(seed, "default:resume"))
    for intent in expert.resume():
        s.step(intent.x, intent.y)
    assert s.done
    # The default persona notices nearly every slip of its own: allow one left uncorrected.
    assert t.n_wrong() <= 1 and len(t.matched_targets()) >= len(t.targets) - 1


def test_tasks_without_a_takeover_expert_say_so():
    from annobc.tasks.episode import annotator_rng

    s = Session("neuron_tracking", 0)
    cls = s.task_cls
    expert = cls.Annotator(s, cls.personas["default"], annotator_rng(0, "default"))
    with pytest.raises(NotImplementedError, match="cannot take over"):
        next(expert.resume())
