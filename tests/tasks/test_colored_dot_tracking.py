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
    random_clicks(s, rng, int(rng.integers(0, 40)))
    cls = s.task_cls
    expert = cls.Annotator(s, cls.personas["default"], annotator_rng(seed, "default:resume"))
    for intent in expert.resume():
        s.step(intent.x, intent.y)
    assert s.done
    # The default persona notices nearly every slip of its own: allow one left uncorrected.
    assert t.n_wrong() <= 1 and len(t.matched_targets()) >= len(t.targets) - 1


def random_clicks(s, rng, n: int) -> None:
    """Someone else's clicks: steps through z, MIP toggles, markers on any dot, any slice."""
    t = s.task
    for _ in range(n):
        r = rng.random()
        if r < 0.5:
            s.click_button("+Z")
        elif r < 0.6:
            s.click_button("-Z")
        elif r < 0.7:
            s.click_button("MIP")
        else:
            d = (t.targets + t.distractors)[int(rng.integers(len(t.targets) + len(t.distractors)))]
            s.click_data(d.x + rng.normal(0, 2), d.y + rng.normal(0, 2))


@pytest.mark.parametrize("seed", range(4))
def test_next_intent_labels_any_state_and_following_it_succeeds(seed):
    """next_intent() is the DAgger labeller: from someone else's state, following its click at
    every step finishes the episode perfectly; it places only after seeing the slice past the
    brightest (the overshoot), so the label never asks for what the screen has not shown."""
    import numpy as np

    from annobc.tasks.episode import annotator_rng

    s = Session(TASK, seed, {"n_targets": [4, 8]})
    t = s.task
    random_clicks(s, np.random.default_rng(seed), int(np.random.default_rng(seed).integers(0, 40)))
    cls = s.task_cls
    expert = cls.Annotator(s, cls.personas["default"], annotator_rng(seed, "default:label"))
    seen: list[int] = []
    for _ in range(400):
        intent = expert.next_intent()
        res = s.step(intent.x, intent.y)
        if res.category == "place" and res.effect.annotated and not res.effect.wrong:
            k = intent.target
            assert t.z == t.targets[k].peak
            edge = t.targets[k].peak in (0, t.n_slices - 1)
            assert edge or {t.z - 1, t.z + 1} & set(seen[-3:])  # came back from past the peak
        seen.append(t.z)
        if s.done:
            break
    assert s.done and t.score() == (1.0, True)


def test_target_offset_is_the_distance_from_the_dots_brightest_slice():
    s = Session(TASK, 2, {"n_targets": [4, 8]})
    t = s.task
    k = max(range(len(t.targets)), key=lambda k: t.targets[k].peak)
    assert t.target_offset(k) == -t.targets[k].peak  # the view starts at slice 0
    s.click_button("+Z")
    assert t.target_offset(k) == 1 - t.targets[k].peak
    assert t.target_offset(len(t.targets)) is None and t.target_offset(-1) is None


def test_tasks_without_a_takeover_expert_say_so():
    from annobc.tasks.episode import annotator_rng

    s = Session("neuron_tracking", 0)
    cls = s.task_cls
    expert = cls.Annotator(s, cls.personas["default"], annotator_rng(0, "default"))
    with pytest.raises(NotImplementedError, match="cannot take over"):
        next(expert.resume())
    with pytest.raises(NotImplementedError, match="cannot label"):
        expert.next_intent()
