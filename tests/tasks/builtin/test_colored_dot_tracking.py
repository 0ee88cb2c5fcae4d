"""colored_dot_tracking: its GUI rules, its score, and the human ranges of its default persona."""

import numpy as np
import pytest

from annobc.tasks import Session, contract, get_annotator_class, get_task_class, run_annotator
from annobc.tasks.episode import annotator_rng
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
    from annobc.tasks.builtin.colored_dot_tracking import COLORS

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


def test_sweeper_persona_sweeps_to_the_last_slice_and_checks_in_gaps_before_done():
    """The sweeper ends where the screen shows the end: after the deepest dot it steps on to the
    last slice, turns MIP on (every dot marked) and presses DONE in it; walking a long gap to the next
    dot it also checks in MIP now and then (dots left unmarked) and goes on."""
    final, gap = 0, 0
    for seed in range(30):
        rec = run_annotator(TASK, seed, "sweeper", params={"n_targets": [4, 8]})
        s = Session(TASK, seed, rec.params)
        t, elements = s.task, []
        for x, y in rec.clicks:
            if s.hit(x, y)[0] == "MIP" and not t.mip and elements and elements[-1] == "+Z":
                # A check after empty slices: all dots marked only at the end, on the last slice.
                left = len(t.targets) - len(t.matched_targets())
                at_end = rec.clicks[-2:] == rec.clicks[len(elements):len(elements) + 2]
                if at_end:
                    final += 1
                    assert left == 0 and t.z == t.n_slices - 1
                else:
                    gap += 1
                    assert left > 0
            elements.append(s.hit(x, y)[0])
            s.step(x, y)
        assert elements[-2:] == ["MIP", "DONE"] and t.z == t.n_slices - 1 and t.mip
        last_place = max(i for i, e in enumerate(elements) if e == "canvas")
        sweep = elements[last_place + 1:-2]
        sweep = sweep[2:] if sweep[:2] == ["MIP", "MIP"] else sweep  # a check after placing
        assert set(sweep) <= {"+Z"}  # then straight on to the last slice
    assert final == 30 and gap >= 10


def test_annotator_steps_a_second_slice_past_only_where_the_first_is_not_visibly_dimmer():
    """Turning back is what the screen shows: one slice past the brightest when the dot has faded
    there by the persona's visible_fade (10%), two where it has not (broad in z, centre off)."""
    from annobc.tasks.builtin.colored_dot_tracking import ColoredDotAnnotator, Dot

    s = Session(TASK, 0)
    a = ColoredDotAnnotator(s, s.task_cls.personas["default"], annotator_rng(0, "t"))
    narrow = Dot(50, 50, 10.0, 10, 2.0, 1.0, 0.8, "red")  # next slice: exp(-1/2) = 61%
    broad = Dot(50, 50, 10.2, 10, 2.0, 2.0, 0.8, "red")  # +1 slice: 93% of the peak's brightness
    assert a._steps_past(narrow, 1) == 1 and a._steps_past(narrow, -1) == 1
    assert a._steps_past(broad, 1) == 2 and a._steps_past(broad, -1) == 1  # faded going up
    counts = [a._steps_past(d, 1) for seed in range(50)
              for d in Session(TASK, seed, {"n_targets": [4, 8]}).task.targets]
    assert 0.01 < counts.count(2) / len(counts) < 0.2  # most dots fade within one slice


@pytest.mark.parametrize("persona", ["nearest", "careless", "sweeper"])
def test_other_personas_run(persona):
    rec = run_annotator(TASK, 0, persona)
    assert rec.done and len(rec) > 20


def annotator(s, persona="default", stream="default", expert=False):
    cls = get_annotator_class(TASK)
    p = s.task_cls.personas[persona]
    rng = annotator_rng(s.task.seed, f"{persona}:{stream}")
    return cls.expert(s, p, rng) if expert else cls(s, p, rng)


def random_clicks(s, rng, n: int) -> None:
    """Someone else's clicks: steps through z, MIP toggles, UNDOs, markers on any dot, any slice."""
    t = s.task
    for _ in range(n):
        r = rng.random()
        if r < 0.45:
            s.click_button("+Z")
        elif r < 0.55:
            s.click_button("-Z")
        elif r < 0.65:
            s.click_button("MIP")
        elif r < 0.7:
            s.click_button("UNDO")
        else:
            d = (t.targets + t.distractors)[int(rng.integers(len(t.targets) + len(t.distractors)))]
            s.click_data(d.x + rng.normal(0, 2), d.y + rng.normal(0, 2))


@pytest.mark.parametrize("seed", range(6))
def test_the_expert_takes_over_from_any_state_and_succeeds(seed):
    """From a state full of someone else's clicks (markers on distractors, on wrong slices, twice
    on a dot, MIP left on) the expert finishes the episode perfectly."""
    s = Session(TASK, seed, {"n_targets": [4, 8]})
    rng = np.random.default_rng(seed)
    random_clicks(s, rng, int(rng.integers(0, 40)))
    for intent in annotator(s, stream="resume", expert=True).resume():
        s.step(intent.x, intent.y)
    assert s.done and s.task.score() == (1.0, True)


@pytest.mark.parametrize("seed", range(4))
def test_next_intent_labels_any_state_and_following_it_succeeds(seed):
    """next_intent() is the DAgger labeller: from someone else's state, following its click at
    every step finishes the episode perfectly; it places only after seeing the slice past the
    brightest (the overshoot), so the label never asks for what the screen has not shown."""
    s = Session(TASK, seed, {"n_targets": [4, 8]})
    t = s.task
    rng = np.random.default_rng(seed)
    random_clicks(s, rng, int(rng.integers(0, 40)))
    expert = annotator(s, stream="label", expert=True)
    seen: list[int] = []
    for _ in range(400):
        intent = expert.next_intent()
        res = s.step(intent.x, intent.y)
        if res.category == "place":
            k = intent.target
            assert not res.effect.wrong and t.z == t.targets[k].peak
            assert {t.z - 1, t.z + 1} & set(seen[-3:])  # came back from past the peak
        seen.append(t.z)
        if s.done:
            break
    assert s.done and t.score() == (1.0, True)


def test_two_annotators_of_an_episode_agree_on_every_click_mistakes_included():
    """Decisions are keyed by the occasion, not drawn from the click noise: a second annotator of
    the same persona, with its own click noise, names the click the first made at every step,
    its slips and their corrections too."""
    mistakes = 0
    for seed in range(10):
        s = Session(TASK, seed)
        actor = annotator(s, "careless")
        other = annotator(s, "careless", stream="other")
        radius = 2 * actor.persona.place_max + 2
        for intent in actor.script():
            assert contract.clicks_agree(s, intent, other.next_intent(), radius), (seed, s.steps)
            mistakes += s.step(intent.x, intent.y).effect.wrong
    assert mistakes >= 5


def test_the_expert_undoes_down_to_a_buried_wrong_marker_and_marks_the_dots_again():
    s = Session(TASK, 4)
    t = s.task
    first, second, third = sorted(t.targets, key=lambda d: d.peak)[:3]
    while t.z < first.peak - 1:
        s.click_button("+Z")
    s.click_data(first.x, first.y)  # a slip: one slice short of the brightest
    for d in (second, third):
        while t.z < d.peak:
            s.click_button("+Z")
        s.click_data(d.x, d.y)
    assert t.marker_targets()[0] == -1 and min(t.marker_targets()[1:]) >= 0
    expert = annotator(s, expert=True)
    elements = []
    while t.n_wrong():
        intent = expert.next_intent()
        elements.append(s.hit(intent.x, intent.y)[0])
        s.step(intent.x, intent.y)
    # UNDO where the marker it removes is drawn: on its slice or next to it (steps between).
    assert elements.count("UNDO") == 3 and set(elements) <= {"UNDO", "+Z", "-Z"} and t.ann == ()
    assert elements[-1] == "UNDO" and elements[0] == "UNDO"
    for intent in expert.resume():
        s.step(intent.x, intent.y)
    assert t.score() == (1.0, True)


def test_a_mistake_it_does_not_notice_stays_and_its_dot_counts_as_done():
    """The never-noticing annotator leaves its wrong marker and does not mark that dot again; the
    expert taking over removes it."""
    cls = get_task_class(TASK)
    persona = cls.personas["careless"].with_mistakes_scaled(3.0).never_noticing()
    for seed in range(20):
        s = Session(TASK, seed)
        t = s.task
        actor = get_annotator_class(TASK)(s, persona, annotator_rng(seed, "careless:blind"))
        elements = []
        for intent in actor.script():
            elements.append(s.hit(intent.x, intent.y)[0])
            if elements[-1] == "DONE":
                break
            s.step(intent.x, intent.y)
        if t.n_wrong():
            break
    assert t.n_wrong() and len(t.ann) == len(t.targets)  # one marker per dot, some of them wrong
    assert "UNDO" not in elements
    for intent in annotator(s, stream="resume", expert=True).resume():
        s.step(intent.x, intent.y)
    assert t.score() == (1.0, True)


def test_the_expert_persona_makes_no_mistakes_and_notices_every_one():
    p = get_task_class(TASK).personas["careless"].expert()
    assert p.slip_rate == p.offcentre_rate == p.distractor_rate == 0.0 and p.notice_rate == 1.0
    assert p.overshoot_rate == 0.3  # exploration stays


def test_markers_match_one_dot_each_closest_first():
    s = Session(TASK, 5)
    t = s.task
    d = min(t.targets, key=lambda d: d.peak)
    while t.z < d.peak:
        s.click_button("+Z")
    s.click_data(d.x + 1, d.y)
    s.click_data(d.x, d.y)  # closer: it takes the match, the first marker is left wrong
    assert t.marker_targets() == (-1, t.targets.index(d)) and t.n_wrong() == 1


def test_target_offset_is_the_distance_from_the_dots_brightest_slice():
    s = Session(TASK, 2, {"n_targets": [4, 8]})
    t = s.task
    k = max(range(len(t.targets)), key=lambda k: t.targets[k].peak)
    assert t.target_offset(k) == -t.targets[k].peak  # the view starts at slice 0
    s.click_button("+Z")
    assert t.target_offset(k) == 1 - t.targets[k].peak
    assert t.target_offset(len(t.targets)) is None and t.target_offset(-1) is None


def test_status_shows_the_total_and_neighbour_slice_markers_are_drawn_faintly():
    from annobc.tasks.builtin.colored_dot_tracking import NEIGHBOUR_COLOR

    s = Session(TASK, 1)
    t = s.task
    assert t.status()[1] == f"MARKERS 0/{len(t.targets)}  MIP OFF"
    d = min(t.targets, key=lambda d: d.peak)
    while t.z < d.peak:
        s.click_button("+Z")
    s.click_data(d.x, d.y)
    assert t.status()[1] == f"MARKERS 1/{len(t.targets)}  MIP OFF"
    assert not (s.render() == NEIGHBOUR_COLOR).all(2).any()
    s.click_button("+Z")
    assert (s.render() == NEIGHBOUR_COLOR).all(2).sum() > 4  # the marker one slice down, faintly
    s.click_button("+Z")
    assert not (s.render() == NEIGHBOUR_COLOR).all(2).any()


def test_the_default_presses_done_in_the_final_mip_right_after_the_last_marker():
    for seed in range(10):
        rec = run_annotator(TASK, seed)
        assert [st.element for st in rec.steps[-3:]] == ["canvas", "MIP", "DONE"], seed
        # MIP checks come after the 6th, 12th, ... marker, where the status shows the count.
        s = Session(TASK, seed)
        for x, y in rec.clicks:
            if s.hit(x, y)[0] == "MIP" and not s.task.mip and 0 < len(s.task.ann) < len(s.task.targets):
                assert len(s.task.ann) % 6 == 0 or s.task.n_wrong(), seed
            s.step(x, y)
