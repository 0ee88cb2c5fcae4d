"""animal_behavioral_tracking: GUI rules, identity by proximity, the score, its mistakes, its
expert."""

import math

import numpy as np
import pytest

from annobc.tasks import Session, frame_hash, get_annotator_class, run_annotator
from annobc.tasks.builtin.animal_behavioral_tracking import ID_COLORS, MATCH_PX, TrackPersona
from annobc.tasks.contract import undo_states
from annobc.tasks.stats import episode_stats

TASK = "animal_behavioral_tracking"


def seed_with(n_animals):
    return next(seed for seed in range(100) if Session(TASK, seed).task.n_animals == n_animals)


def put(s, k, m, pt):
    """Select animal k and marker m, then click pt."""
    s.click_button(f"A{k + 1}")
    s.click_button(("FRONT", "BACK")[m])
    return s.click_data(*pt)


def annotate_all(s):
    t = s.task
    for f in range(t.n_frames):
        while t.t < f:
            s.click_button("NEXT")
        for k in range(t.n_animals):
            for m in (0, 1):
                assert not put(s, k, m, t.gt_point(f, k, m)).effect.wrong


def test_frames_are_clamped_and_status_shows_the_hierarchy():
    s = Session(TASK, 0)
    t = s.task
    assert t.selected() == ("A1", "FRONT")
    assert t.status()[0] == f"FRAME 1/{t.n_frames}  A1 FRONT"
    s.click_button("PREV")
    assert t.t == 0
    for _ in range(20):
        s.click_button("NEXT")
    assert t.t == t.n_frames - 1 and t.position() == 1.0
    s.click_button("A2")
    s.click_button("BACK")
    assert t.selected() == ("A2", "BACK")
    assert t.status()[0] == f"FRAME {t.n_frames}/{t.n_frames}  A2 BACK"
    assert t.status()[1].startswith(f"{t.n_animals} ANIMALS  HERE 0/{2 * t.n_animals}")


def test_unused_animal_button_does_nothing():
    s = Session(TASK, seed_with(2))
    s.click_button("A2")
    before = frame_hash(s.render())
    res = s.click_button("A3")
    assert res.category == "select" and s.task.animal == 1
    assert frame_hash(s.render()) == before
    s3 = Session(TASK, seed_with(3))
    s3.click_button("A3")
    assert s3.task.selected()[0] == "A3"


def test_click_places_the_selected_marker_and_replaces_it():
    s = Session(TASK, 1)
    t = s.task
    s.click_button("NEXT")
    res = put(s, 1, 1, (40.0, 50.0))
    assert res.category == "place" and res.effect.annotated
    assert t.ann[t.slot(1, 1, 1)] == pytest.approx((40.0, 50.0))
    assert sum(a is not None for a in t.ann) == 1
    s.click_data(60.0, 30.0)  # same frame, animal and marker: replaces
    assert t.ann[t.slot(1, 1, 1)] == pytest.approx((60.0, 30.0))
    assert sum(a is not None for a in t.ann) == 1
    assert "HERE 1/" in t.status()[1]
    s.click_button("UNDO")
    assert t.ann[t.slot(1, 1, 1)] == pytest.approx((40.0, 50.0))


def test_perfect_annotation_scores_one_and_succeeds():
    s = Session(TASK, 2)
    annotate_all(s)
    assert s.task.score() == (1.0, True) and s.task.n_wrong() == 0
    s.click_button("DONE")
    assert s.done


def test_identity_swap_is_a_mistake_that_lowers_the_score_and_undo_removes_it():
    s = Session(TASK, 3)
    t = s.task
    annotate_all(s)
    # Re-place A1's front in the last frame on A2's snout: the right spot, the wrong identity.
    f = t.n_frames - 1
    res = put(s, 0, 0, t.gt_point(f, 1, 0))
    assert res.effect.wrong and t.n_wrong() == 1
    score, success = t.score()
    assert score == pytest.approx(1 - 1 / len(t.ann)) and success
    res = s.click_button("UNDO")
    assert res.removed_mistake and t.n_wrong() == 0 and t.score() == (1.0, True)


def test_front_back_flip_and_stale_selection_are_mistakes():
    s = Session(TASK, 4)
    t = s.task
    assert put(s, 0, 0, t.gt_point(0, 0, 1)).effect.wrong  # FRONT on the tail base
    assert put(s, 0, 1, t.gt_point(0, 0, 0)).effect.wrong  # BACK on the snout
    assert t.n_wrong() == 2
    s.click_button("UNDO")
    s.click_button("UNDO")
    assert t.n_wrong() == 0
    assert not put(s, 0, 0, t.gt_point(0, 0, 0)).effect.wrong
    # Forgets to switch to BACK: the tail-base click replaces the front marker.
    res = s.click_data(*t.gt_point(0, 0, 1))
    assert res.effect.wrong and t.n_wrong() == 1 and t.ann[t.slot(0, 0, 1)] is None


def test_many_missing_or_wrong_markers_fail():
    s = Session(TASK, 5)
    t = s.task
    annotate_all(s)
    f = t.n_frames - 1
    for k in range(t.n_animals):  # the last frame's identities all rotated
        for m in (0, 1):
            put(s, k, m, t.gt_point(f, (k + 1) % t.n_animals, m))
    score, success = t.score()
    wrong = 2 * t.n_animals
    assert t.n_wrong() == wrong and score == pytest.approx(1 - wrong / len(t.ann))
    assert success == (score >= 0.9)
    for _ in range(wrong):
        s.click_button("UNDO")
    assert t.score() == (1.0, True)


@pytest.mark.parametrize("seed", range(0, 60, 3))
def test_scene_keeps_identity_decidable_and_has_an_encounter(seed):
    t = Session(TASK, seed).task
    n = t.n_animals
    assert 2 <= n <= 3 and 5 <= t.n_frames <= 8
    met = False
    for f in range(1, t.n_frames):
        for i in range(n):
            own = [math.dist(t.gt_point(f, i, m), t.gt_point(f - 1, i, m)) for m in (0, 1)]
            for j in range(n):
                if j != i:
                    other = [math.dist(t.gt_point(f, i, m), t.gt_point(f - 1, j, m)) for m in (0, 1)]
                    assert sum(other) > sum(own)
                    met |= t.body_distance(f, i, j) < t.params.encounter
            # Same-identity points of different animals are never within a match of each other.
            for j in range(n):
                if j != i:
                    assert all(math.dist(t.gt_point(f, i, m), t.gt_point(f, j, m)) >= 2 * MATCH_PX
                               for m in (0, 1))
    assert met


def test_colour_tags_only_in_the_first_frame_and_faint_previous_markers():
    s = Session(TASK, 6)
    t = s.task

    def tag_pixels(img, k):
        c = np.asarray(ID_COLORS[k], int)
        return int((np.abs(img.astype(int) - c).sum(2) < 60).sum())

    assert all(tag_pixels(t.view_image(), k) >= 6 for k in range(t.n_animals))
    s.click_button("NEXT")
    assert all(tag_pixels(t.view_image(), k) == 0 for k in range(t.n_animals))
    s.click_button("PREV")
    put(s, 0, 0, t.gt_point(0, 0, 0))
    x, y = s.mapper.to_screen(*t.ann[t.slot(0, 0, 0)])
    assert tuple(s.render()[y, x]) == ID_COLORS[0]  # this frame: full colour
    s.click_button("NEXT")
    base = s.mapper.to_canvas_image(t.view_image())
    px = s.render()[y, x]
    under = base[y - s.layout.canvas.y0, x - s.layout.canvas.x0]
    assert tuple(px) != ID_COLORS[0] and tuple(px) != tuple(under)  # previous frame: faint
    assert px[0] > under[0]


def test_cached_overlays_render_like_a_fresh_session():
    frames = []
    rec = run_annotator(TASK, 8, frames=frames)
    for i in (10, len(rec) // 2, len(rec)):
        s = Session(TASK, 8)
        for x, y in rec.clicks[:i]:
            s.step(x, y)
        assert frame_hash(s.render()) == frame_hash(frames[i])


def test_annotator_swaps_near_encounters_and_corrects():
    recs = [run_annotator(TASK, seed) for seed in range(40)]
    stats = episode_stats(recs)
    assert stats["success_rate"] >= 0.95
    assert 0.02 <= stats["correction_rate"] <= 0.10
    phases = {s.phase for r in recs for s in r.steps}
    assert {"survey", "navigate", "inspect", "place", "select", "correct", "finish"} <= phases
    assert "verify" not in phases  # the default presses DONE when ALL 2NT/2NT shows
    # Swaps: a wrong placement at another animal's true point, made while the two are close.
    swaps = 0
    for r in recs[:20]:
        s = Session(TASK, r.seed)
        t = s.task
        for st in r.steps:
            f, k, m = t.t, t.animal, t.marker
            s.step(st.x, st.y)
            if st.category == "place" and st.is_mistake:
                pt = t.ann[t.slot(f, k, m)]
                for j in range(t.n_animals):
                    if j != k and math.dist(pt, t.gt_point(f, j, m)) <= MATCH_PX:
                        swaps += 1
                        assert t.body_distance(f, k, j) < 14.0
    assert swaps > 0


@pytest.mark.parametrize("persona", ["framewise", "hasty"])
def test_other_personas_work_frame_by_frame(persona):
    rec = run_annotator(TASK, 0, persona)
    default = run_annotator(TASK, 0)
    assert rec.done and len(rec) >= 50
    nav = lambda r: sum(s.category == "navigate" for s in r.steps)  # noqa: E731
    assert nav(rec) < nav(default)  # no trips back to frame 1 between animals


def expert(s):
    """The task's labeller on session s."""
    cls = get_annotator_class(TASK)
    return cls.expert(s, s.task_cls.personas["default"], np.random.default_rng(0))


def test_target_point_is_the_animal_in_this_frame():
    s = Session(TASK, 9)
    t = s.task
    for f in range(2):
        assert t.target_point(1) == pytest.approx(tuple(t.centre[f, 1]))
        s.click_button("NEXT")
    assert t.target_point(-1) is None and t.target_point(t.n_animals) is None


def test_expert_goes_back_to_a_wrong_marker_and_undoes_it_where_it_is_the_latest():
    s = Session(TASK, 10)
    t = s.task
    put(s, 0, 1, t.gt_point(0, 1, 1))  # A1's BACK on A2's tail base
    for _ in range(3):
        s.click_button("NEXT")
    s.click_button("A2")
    s.click_button("FRONT")
    clicks = []
    for intent in expert(s).resume():
        clicks.append(s.hit(intent.x, intent.y)[0])
        s.step(intent.x, intent.y)
        if t.n_wrong() == 0:
            break
    # The wrong marker is the latest annotation: UNDO once its frame shows it, not before.
    assert clicks == ["PREV"] * 3 + ["UNDO"] and t.slot_ok(0, 0, 1) is None
    for intent in expert(s).resume():
        s.step(intent.x, intent.y)
    assert s.done and t.score() == (1.0, True)


def test_expert_goes_back_to_a_wrong_marker_and_places_it_again():
    s = Session(TASK, 10)
    t = s.task
    put(s, 0, 1, t.gt_point(0, 1, 1))  # A1's BACK on A2's tail base
    for _ in range(3):
        s.click_button("NEXT")
    put(s, 1, 0, t.gt_point(3, 1, 0))  # a right marker after it: UNDO would take that one
    clicks = []
    for intent in expert(s).resume():
        clicks.append(s.hit(intent.x, intent.y)[0])
        s.step(intent.x, intent.y)
        if t.n_wrong() == 0:
            break
    assert clicks == ["PREV"] * 3 + ["A1", "BACK", "canvas"]
    assert len(clicks) <= t.correction_length and t.slot_ok(0, 0, 1)
    for intent in expert(s).resume():
        s.step(intent.x, intent.y)
    assert s.done and t.score() == (1.0, True)


def test_a_noticed_slip_is_taken_back_with_undo_and_placed_again():
    persona = TrackPersona(flip_rate=1.0, notice_rate=1.0, late_rate=0.0, survey_rate=0.0,
                           inspect_rate=0.0, verify_rate=0.0)
    s = Session(TASK, 11)
    ann = get_annotator_class(TASK)(s, persona, np.random.default_rng(0))
    steps = []
    for intent in ann.script():
        res = s.step(intent.x, intent.y)
        steps.append((res.category, res.effect.wrong))
    # Every instance is flipped (FRONT, BACK both wrong), then UNDO twice, then done right.
    undos = [i for i, st in enumerate(steps) if st[0] == "undo"]
    assert len(undos) == 2 * s.task.n_animals * s.task.n_frames
    for i in undos[::2]:
        assert steps[i + 1][0] == "undo" and steps[i - 1] == ("place", True)
    assert s.done and s.task.score() == (1.0, True)


def first_close_pass(t, dist):
    """(identity, frame, other animal) of the first close pass in the annotator's animal order."""
    return next((k, f, t.nearest_other(f, k)[0]) for k in range(t.n_animals)
                for f in range(1, t.n_frames) if t.nearest_other(f, k)[1] < dist)


def test_a_swap_left_unnoticed_carries_on_with_the_other_animal():
    persona = TrackPersona(swap_rate=1.0, flip_rate=0.0, forget_rate=0.0, survey_rate=0.0,
                           inspect_rate=0.0, verify_rate=0.0).never_noticing()

    def followed_animal_keeps_clear(seed):
        # After the swap, nothing else is close to the animal it follows: no second swap.
        t = Session(TASK, seed).task
        k, f0, j = first_close_pass(t, persona.close_dist)
        later = range(f0 + 1, t.n_frames)
        return len(later) >= 2 and all(t.nearest_other(f, j)[1] >= persona.close_dist
                                       for f in later)

    s = Session(TASK, next(seed for seed in range(100) if followed_animal_keeps_clear(seed)))
    t = s.task
    ann = get_annotator_class(TASK)(s, persona, np.random.default_rng(0))
    for intent in ann.script():
        if s.hit(intent.x, intent.y)[0] == "DONE":
            break
        s.step(intent.x, intent.y)
    k, f0, j = first_close_pass(t, persona.close_dist)
    assert all(t.slot_ok(f, k, m) for f in range(f0) for m in (0, 1))
    for f in range(f0, t.n_frames):  # from the swap on, identity k's markers sit on animal j
        for m in (0, 1):
            assert math.dist(t.ann[t.slot(f, k, m)], t.gt_point(f, j, m)) <= MATCH_PX
    for intent in expert(s).resume():
        s.step(intent.x, intent.y)
    assert s.done and t.score() == (1.0, True)


def test_default_surveys_peeks_at_every_close_pair_and_presses_done_at_all_markers():
    for seed in range(6):
        rec = run_annotator(TASK, seed)
        t = Session(TASK, seed).task
        T = t.n_frames
        assert [st.element for st in rec.steps[:2 * (T - 1)]] == ["NEXT"] * (T - 1) + ["PREV"] * (T - 1)
        assert rec.steps[-1].element == "DONE" and rec.steps[-2].category == "place"
        assert not any(st.phase == "verify" for st in rec.steps)
        close = {(f, k) for f in range(1, T) for k in range(t.n_animals)
                 if t.nearest_other(f, k)[1] < TrackPersona().close_dist}
        if not any(st.is_mistake for st in rec.steps):  # a PREV and a NEXT at every close pair
            assert sum(st.phase == "inspect" for st in rec.steps) == 2 * len(close)


def test_the_labeller_undoes_in_the_states_where_the_demonstration_undoes():
    agree = [s.hit(i.x, i.y)[0] == "UNDO" for s, i in undo_states(TASK, range(12))]
    assert len(agree) >= 5 and all(agree)


def test_expert_persona_makes_no_mistakes_and_notices_all():
    p = TrackPersona().expert()
    assert p.swap_rate == p.flip_rate == p.forget_rate == 0.0 and p.notice_rate == 1.0
    tripled = TrackPersona().with_mistakes_scaled(3.0)
    assert tripled.swap_rate == pytest.approx(0.36) and tripled.flip_rate == pytest.approx(0.045)
