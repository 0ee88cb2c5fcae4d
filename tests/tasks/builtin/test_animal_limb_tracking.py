"""animal_limb_tracking: its GUI rules (tabs, frames, placement), its score, its mistakes, its
expert."""

import numpy as np
import pytest

from annobc.tasks import Session, frame_hash, get_annotator_class, run_annotator
from annobc.tasks.builtin.animal_limb_tracking import (FL, FR, HL, HR, KEYPOINTS, NOSE, TAIL,
                                                       LimbPersona)
from annobc.tasks.contract import undo_states
from annobc.tasks.stats import episode_stats

TASK = "animal_limb_tracking"


def place(s, k, select=True):
    """Select keypoint k's tab (unless told not to) and click its ground truth in this frame."""
    if select:
        s.click_button(KEYPOINTS[k])
    u, v = s.task.gt[s.task.frame, k]
    return s.click_data(u, v)


def test_tabs_select_one_keypoint_and_status_shows_frame_and_key():
    s = Session(TASK, 0)
    t = s.task
    assert t.selected() == ("NOSE",) and "FRAME 1/" in t.status()[0] and "KEY NOSE" in t.status()[0]
    for k, label in enumerate(KEYPOINTS):
        res = s.click_button(label)
        assert res.category == "select" and not res.effect.annotated
        assert t.sel == k and t.selected() == (label,)
        assert f"KEY {label} " in t.status()[0]
    s.click_button("PREV")
    assert t.frame == 0
    for _ in range(20):
        s.click_button("NEXT")
    assert t.frame == t.n_frames - 1
    assert t.status()[0].startswith(f"FRAME {t.n_frames}/{t.n_frames} ")
    assert t.position() == 1.0
    s.click_button("PREV")
    assert t.frame == t.n_frames - 2


def test_click_places_the_selected_keypoint_in_this_frame_replacing_and_undoable():
    s = Session(TASK, 1)
    t = s.task
    s.click_button("NEXT")
    res = place(s, TAIL)
    assert res.category == "place" and res.effect.annotated and not res.effect.wrong
    assert t.ann[1][TAIL] is not None and t.ann[0][TAIL] is None
    assert t.status()[1] == "IN FRAME 1/6: - TAIL - - - -"
    first = t.ann[1][TAIL]
    # A second click with the same tab moves that keypoint (one keypoint per tab and frame).
    res = s.click_data(5.0, 5.0)
    assert res.effect.wrong and t.n_wrong() == 1
    assert sum(p is not None for p in t.ann[1]) == 1 and t.ann[1][TAIL] != first
    res = s.click_button("UNDO")
    assert res.removed_mistake and t.ann[1][TAIL] == first and t.n_wrong() == 0
    # UNDO does not change the view (frame and tab).
    assert t.frame == 1 and t.sel == TAIL


def test_perfect_annotation_scores_one_and_succeeds():
    s = Session(TASK, 2)
    t = s.task
    for f in range(t.n_frames):
        if f:
            s.click_button("NEXT")
        for k in range(len(KEYPOINTS)):
            assert not place(s, k).effect.wrong
        assert t.status()[1] == "IN FRAME 6/6: NOSE TAIL FL FR HL HR"
    assert t.score() == (1.0, True) and t.n_wrong() == 0
    assert t.status()[0].endswith(f"ALL {6 * t.n_frames}/{6 * t.n_frames}")
    s.click_button("DONE")
    assert s.done


def test_left_right_swap_is_a_mistake_and_undo_removes_it():
    s = Session(TASK, 3)
    t = s.task
    s.click_button("FL")
    u, v = t.gt[0, FR]
    res = s.click_data(u, v)  # the animal's right front paw, with FL selected
    assert res.effect.wrong and t.n_wrong() == 1
    score, _ = t.score()
    assert score == 0.0
    res = s.click_button("UNDO")
    assert res.removed_mistake and t.n_wrong() == 0 and t.ann[0][FL] is None
    assert not place(s, FL, select=False).effect.wrong


def test_wrong_tab_still_selected_moves_the_other_keypoint():
    s = Session(TASK, 4)
    t = s.task
    assert not place(s, NOSE).effect.wrong
    res = place(s, TAIL, select=False)  # forgot to switch to TAIL: the NOSE marker moves
    assert res.effect.wrong and t.n_wrong() == 1
    assert t.ann[0][TAIL] is None and "KEY NOSE" in t.status()[0] and t.score()[0] == 0.0
    assert t.status()[1].startswith("IN FRAME 1/6")
    s.click_button("UNDO")
    assert t.n_wrong() == 0 and t.keypoint_ok(0, NOSE)
    assert not place(s, TAIL).effect.wrong and t.keypoint_ok(0, TAIL)


def test_missing_keypoints_count_as_wrong_pck_threshold():
    s = Session(TASK, 5)
    t = s.task
    total = 6 * t.n_frames
    missing = 0
    for f in range(t.n_frames):
        if f:
            s.click_button("NEXT")
        for k in range(6):
            if f == 0 and k in (HL, HR):  # leave two keypoints out
                missing += 1
                continue
            place(s, k)
    score, success = t.score()
    assert score == pytest.approx((total - missing) / total)
    assert success == (score >= 0.9) and t.n_wrong() == 0


def test_ground_truth_paws_sit_on_the_animals_own_sides_and_are_visible():
    for seed in range(10):
        t = Session(TASK, seed).task
        for f in range(t.n_frames):
            nose, tail = t.gt[f, NOSE], t.gt[f, TAIL]
            hx, hy = nose - tail
            left = np.array([hy, -hx])  # the animal's left, seen from above with v pointing down
            mid = 0.5 * (nose + tail)
            for k, side in ((FL, 1), (HL, 1), (FR, -1), (HR, -1)):
                assert side * np.dot(t.gt[f, k] - mid, left) > 0
            # Paws are drawn pink, far from the floor and coat colours.
            t.frame = f
            img = t.view_image().astype(int)
            for k in (FL, FR, HL, HR):
                u, v = np.round(t.gt[f, k]).astype(int)
                r, g, _ = img[v, u]
                assert r - g > 35, (seed, f, KEYPOINTS[k], img[v, u])
            # Every keypoint is inside the canvas with a margin.
            assert (t.gt[f] >= 4).all() and (t.gt[f] <= t.params.size - 5).all()


def test_previous_frame_keypoints_are_drawn_faintly():
    s = Session(TASK, 6)
    t = s.task
    place(s, NOSE)
    s.click_button("NEXT")
    with_faint = s.render()
    x, y = s.mapper.to_screen(*t.ann[0][NOSE])
    base = s.canvas_image()
    cx, cy = x - s.layout.canvas.x0, y - s.layout.canvas.y0
    px = with_faint[y, x].astype(int)
    assert not np.array_equal(px, base[cy, cx]) and not np.array_equal(px, (255, 50, 50))
    s.click_button("NEXT")  # two frames on, frame 0's markers are gone
    assert np.array_equal(s.render()[y, x], s.canvas_image()[cy, cx])


def test_frames_differ_and_gait_moves_the_paws():
    s = Session(TASK, 7)
    t = s.task
    a = frame_hash(s.render())
    s.click_button("NEXT")
    assert frame_hash(s.render()) != a
    body = t.gt[:, [NOSE, TAIL]].mean(1)
    rel = t.gt[:, FL] - body
    assert np.ptp(np.linalg.norm(rel, axis=1)) > 1.0  # the paw swings relative to the body


def test_personas_differ_in_order_and_navigation():
    d = episode_stats([run_annotator(TASK, s) for s in range(20)])
    z = episode_stats([run_annotator(TASK, s, "zigzag") for s in range(20)])
    lf = episode_stats([run_annotator(TASK, s, "legs_first") for s in range(20)])
    # zigzag reverses the order each frame, so the last tab carries over; it never surveys.
    assert z["mean_length"] < d["mean_length"] < lf["mean_length"]
    assert z["action_mix"]["navigate"] < d["action_mix"]["navigate"] < lf["action_mix"]["navigate"]
    rec = run_annotator(TASK, 0, "legs_first")
    worked_on = [s.target % 6 for s in rec.steps if s.category == "place"][:12]
    assert list(dict.fromkeys(worked_on))[:6] == [FL, FR, HL, HR, NOSE, TAIL]


def expert(s):
    """The task's labeller on session s."""
    cls = get_annotator_class(TASK)
    return cls.expert(s, s.task_cls.personas["default"], np.random.default_rng(0))


def test_target_point_is_the_keypoint_on_its_own_frame_only():
    s = Session(TASK, 8)
    t = s.task
    item = 1 * 6 + HL
    assert t.target_point(item) is None and t.target_offset(item) == -1
    s.click_button("NEXT")
    assert t.target_point(item) == pytest.approx(tuple(t.gt[1, HL]))
    assert t.target_offset(item) == 0 and t.target_point(-1) is None


def test_expert_goes_back_to_a_wrong_keypoint_and_undoes_it_where_it_is_the_latest():
    s = Session(TASK, 9)
    t = s.task
    for k in range(6):
        place(s, k)
    s.click_button("FR")
    s.click_data(*t.gt[0, FL])  # FR on the left front paw
    s.click_button("NEXT")
    s.click_button("NEXT")
    s.click_button("NOSE")
    assert t.n_wrong() == 1
    clicks = []
    for intent in expert(s).resume():
        clicks.append(s.hit(intent.x, intent.y)[0])
        s.step(intent.x, intent.y)
        if t.n_wrong() == 0:
            break
    # The wrong FR is the latest annotation and UNDO puts back the right one: UNDO once its frame
    # shows it, not before.
    assert clicks == ["PREV", "PREV", "UNDO"] and t.keypoint_ok(0, FR)
    assert len(clicks) <= t.correction_length


def test_expert_goes_back_to_a_wrong_keypoint_and_places_it_again():
    s = Session(TASK, 9)
    t = s.task
    for k in range(6):
        place(s, k)
    s.click_button("FR")
    s.click_data(*t.gt[0, FL])  # FR on the left front paw
    s.click_button("NEXT")
    s.click_button("NEXT")
    place(s, NOSE)  # a right keypoint after it: UNDO would take that one
    assert t.n_wrong() == 1
    clicks = []
    for intent in expert(s).resume():
        clicks.append(s.hit(intent.x, intent.y)[0])
        s.step(intent.x, intent.y)
        if t.n_wrong() == 0:
            break
    # PREV twice, the FR tab, the click: within the task's correction length.
    assert clicks == ["PREV", "PREV", "FR", "canvas"]
    assert len(clicks) <= t.correction_length and t.keypoint_ok(0, FR)


def test_expert_finishes_from_a_half_done_state_with_every_keypoint_right():
    s = Session(TASK, 10)
    t = s.task
    s.click_button("NEXT")
    place(s, NOSE)
    s.click_button("HR")
    s.click_data(3.0, 3.0)
    for intent in expert(s).resume():
        s.step(intent.x, intent.y)
    assert s.done and t.score() == (1.0, True)


def test_a_noticed_slip_is_taken_back_with_undo_and_placed_again():
    persona = LimbPersona(wrong_tab_rate=1.0, notice_rate=1.0, survey_rate=0.0,
                          inspect_rate=0.0, review_rate=0.0)
    s = Session(TASK, 11)
    ann = get_annotator_class(TASK)(s, persona, np.random.default_rng(0))
    steps = []
    for intent in ann.script():
        res = s.step(intent.x, intent.y)
        steps.append((res.category, res.effect.wrong, intent.phase))
    undos = [i for i, st in enumerate(steps) if st[0] == "undo"]
    assert undos and all(steps[i - 1][:2] == ("place", True) for i in undos)
    assert all(steps[i][2] == "correct" for i in undos)
    assert s.done and s.task.score() == (1.0, True)


def test_unnoticed_slips_are_left_and_the_expert_fixes_them():
    persona = LimbPersona(swap_rate=1.0, survey_rate=0.0, inspect_rate=0.0,
                          review_rate=0.0).never_noticing()
    s = Session(TASK, 12)
    t = s.task
    ann = get_annotator_class(TASK)(s, persona, np.random.default_rng(0))
    for intent in ann.script():
        if s.hit(intent.x, intent.y)[0] == "DONE":
            break
        s.step(intent.x, intent.y)
    # Every leg pair of every frame is swapped, both paws on the wrong sides; nothing undone.
    assert t.n_wrong() == 4 * t.n_frames
    assert all(t.keypoint_ok(f, k) for f in range(t.n_frames) for k in (NOSE, TAIL))
    for intent in expert(s).resume():
        s.step(intent.x, intent.y)
    assert s.done and t.score() == (1.0, True)


def test_expert_persona_makes_no_mistakes_and_notices_all():
    p = LimbPersona().expert()
    assert p.swap_rate == p.wrong_tab_rate == 0.0
    assert p.notice_rate == p.swap_notice_now == p.frame_check == 1.0
    rare = LimbPersona().with_mistakes_scaled(3.0)
    assert rare.swap_rate == pytest.approx(0.15) and rare.wrong_tab_rate == pytest.approx(0.075)


def test_default_surveys_never_looks_back_and_presses_done_at_all_keypoints():
    for seed in range(6):
        rec = run_annotator(TASK, seed)
        t = Session(TASK, seed).task
        T = t.n_frames
        assert [st.element for st in rec.steps[:2 * (T - 1)]] == ["NEXT"] * (T - 1) + ["PREV"] * (T - 1)
        assert all(st.phase == "survey" for st in rec.steps[:2 * (T - 1)])
        # DONE on the click after the last keypoint lands (``ALL 6T/6T`` then shows).
        assert rec.steps[-1].element == "DONE" and rec.steps[-2].category == "place"
        assert not any(st.phase in ("inspect", "verify") for st in rec.steps)


def test_the_labeller_undoes_in_the_states_where_the_demonstration_undoes():
    undos = agree = 0
    for s, intent in undo_states(TASK, range(30)):
        undos += 1
        agree += s.hit(intent.x, intent.y)[0] == "UNDO"
        # What the UNDO takes back is the latest annotation, wrong and drawn on this frame.
        f, k, _ = s.task.undo_change()
        assert f == s.task.frame and s.task.keypoint_ok(f, k) is False
    assert undos >= 5 and agree == undos


def test_undo_change_names_the_keypoint_undo_would_put_back():
    s = Session(TASK, 13)
    t = s.task
    assert t.undo_change() is None
    place(s, NOSE)
    first = t.ann[0][NOSE]
    assert t.undo_change() == (0, NOSE, None)
    s.click_data(5.0, 5.0)  # NOSE moved off the animal
    assert t.undo_change() == (0, NOSE, first)
    s.click_button("UNDO")
    s.click_button("UNDO")
    assert t.undo_change() is None
