"""multichannel_image_alignment: its GUI rules, its score and its mistakes."""


import numpy as np
import pytest

from annobc.tasks import Session, get_annotator_class, get_task_class, run_annotator
from annobc.tasks.builtin.multichannel_image_alignment import AlignPersona
from annobc.tasks.contract import random_element_click
from annobc.tasks.stats import episode_stats

TASK = "multichannel_image_alignment"


def shared(t, n):
    """n shared landmarks well inside the canvas, spread out."""
    fs = [t.features[i] for i in t.shared]
    return sorted(fs, key=lambda f: (f.y, f.x))[:: max(1, len(fs) // n)][:n]


def test_view_buttons_are_exclusive_and_shown_in_status():
    s = Session(TASK, 0)
    t = s.task
    assert t.view == "A" and t.selected() == ("CH-A",) and "VIEW CH-A" in t.status()[0]
    assert t.view_key() == "A"
    for label, view in (("CH-B", "B"), ("OVERLAY", "O"), ("CH-A", "A"), ("OVERLAY", "O")):
        res = s.click_button(label)
        assert res.category == "view" and not res.effect.annotated
        assert t.view == view and t.selected() == (label,)
        assert f"VIEW {label}" in t.status()[0]
    assert t.position() == 0.5
    s.click_button("CH-B")
    assert t.position() == 1.0
    # The two channels and the overlay are different images.
    imgs = {}
    for label in ("CH-A", "CH-B", "OVERLAY"):
        s.click_button(label)
        imgs[label] = t.view_image()
    assert not np.array_equal(imgs["CH-A"], imgs["CH-B"])
    assert not np.array_equal(imgs["CH-A"], imgs["OVERLAY"])


def test_clicks_add_landmarks_in_the_shown_channel_and_pair_in_order():
    s = Session(TASK, 1)
    t = s.task
    f, g = shared(t, 2)
    assert "NEXT A1" in t.status()[0] and "NO ESTIMATE" in t.status()[1]
    res = s.click_data(f.x, f.y)
    assert res.effect.annotated and not res.effect.wrong
    assert len(t.ann[0]) == 1 and len(t.ann[1]) == 0 and "NEXT B1" in t.status()[0]
    s.click_button("OVERLAY")
    res = s.click_data(50, 50)  # the overlay takes no landmarks
    assert res.category == "place" and not res.effect.annotated and len(t.ann[0]) == 1
    s.click_button("CH-B")
    res = s.click_data(f.bx, f.by)
    assert res.effect.annotated and not res.effect.wrong
    assert "PAIRS 1/5  NEXT A2" in t.status()[0] and "DX" in t.status()[1]
    # A second A landmark waits for its partner; the next B pairs with it.
    s.click_button("CH-A")
    s.click_data(g.x, g.y)
    assert "PAIRS 1/5  NEXT B2" in t.status()[0]
    s.click_button("CH-B")
    s.click_data(g.bx, g.by)
    assert "PAIRS 2/5  NEXT A3" in t.status()[0]
    assert t.n_wrong() == 0


def test_exact_pairs_score_one_and_clicked_pairs_succeed():
    s = Session(TASK, 2)
    t = s.task
    for f in shared(t, 3):
        t.view = "A"
        t.click_canvas(f.x, f.y)
        t.view = "B"
        t.click_canvas(f.bx, f.by)
    score, success = t.score()
    assert score == pytest.approx(1.0) and success
    assert t.registration_error() == pytest.approx(0.0, abs=1e-9)

    s = Session(TASK, 2)
    t = s.task
    for f in shared(t, 4):
        s.click_button("CH-A")
        s.click_data(f.x, f.y)
        s.click_button("CH-B")
        s.click_data(f.bx, f.by)
    score, success = t.score()
    assert success and score > 0.9
    # The estimate is the true shift, and the overlay un-shifts B by it.
    dx, dy = t.shift
    assert t.view_key() == "B"
    s.click_button("OVERLAY")
    assert t.view_key() == ("O", round(dx), round(dy))


def test_no_pair_scores_zero_and_raw_misalignment_fails():
    s = Session(TASK, 3)
    t = s.task
    assert t.score() == (0.0, False)
    f = shared(t, 1)[0]
    s.click_data(f.x, f.y)  # an A landmark alone is no estimate
    assert t.score() == (0.0, False)
    # Pairing a landmark with the same screen spot in B (forgetting the shift) is a mismatch.
    s.click_button("CH-B")
    res = s.click_data(f.x, f.y)
    assert res.effect.wrong and t.n_wrong() == 1
    score, success = t.score()
    assert not success and score < 0.5


def test_mismatched_pair_lowers_score_and_undo_removes_it():
    s = Session(TASK, 4)
    t = s.task
    f, g, h = shared(t, 3)
    for a in (f, g):
        s.click_button("CH-A")
        s.click_data(a.x, a.y)
        s.click_button("CH-B")
        s.click_data(a.bx, a.by)
    good = t.score()
    assert good[1]
    s.click_button("CH-A")
    s.click_data(h.x, h.y)
    s.click_button("CH-B")
    res = s.click_data(g.bx, g.by)  # h paired with g's partner
    assert res.effect.wrong and t.n_wrong() == 1
    assert max(t.pair_residuals()) > 4.0
    bad = t.score()
    assert bad[0] < good[0] and not bad[1]
    res = s.click_button("UNDO")
    assert res.removed_mistake and t.n_wrong() == 0 and "NEXT B3" in t.status()[0]
    res = s.click_data(h.bx, h.by)
    assert not res.effect.wrong and t.score()[1]


def test_landmark_on_a_one_channel_feature_is_flagged():
    s = Session(TASK, 5)
    t = s.task
    only_a = next(f for f in t.features if f.channels == "A")
    res = s.click_data(only_a.x, only_a.y)
    assert res.effect.wrong and t.n_wrong() == 1
    res = s.click_button("UNDO")
    assert res.removed_mistake and t.n_wrong() == 0 and t.ann == ((), ())
    only_b = next(f for f in t.features if f.channels == "B")
    s.click_button("CH-B")
    assert s.click_data(only_b.bx, only_b.by).effect.wrong


def test_rotation_is_estimated_when_enabled():
    s = Session(TASK, 6, params={"max_rotation_deg": 5.0})
    t = s.task
    assert t.rigid and t.theta != 0.0
    assert " R " in t.status()[1] or "NO ESTIMATE" in t.status()[1]
    fs = shared(t, 3)
    for f in fs:
        t.view = "A"
        t.click_canvas(f.x, f.y)
        t.view = "B"
        t.click_canvas(f.bx, f.by)
    th, _ = t.estimate()
    assert th == pytest.approx(t.theta, abs=1e-9) and t.score()[1]
    assert " R " in t.status()[1]
    # Translation alone leaves a rotation error.
    s0 = Session(TASK, 6)
    assert not s0.task.rigid and s0.task.theta == 0.0


def test_overlay_draws_landmarks_and_ghosts_of_the_other_channel():
    s = Session(TASK, 7)
    t = s.task
    f = shared(t, 1)[0]
    before = s.render().copy()
    s.click_data(f.x, f.y)
    after_a = s.render().copy()
    assert not np.array_equal(before, after_a)  # the A cross
    s.click_button("CH-B")
    x, y = s.mapper.to_screen(f.x, f.y)
    frame = s.render()
    # The pending A landmark shows as a bright yellow ring in channel B.
    ring = frame[y - 4:y + 5, x - 4:x + 5].reshape(-1, 3)
    assert any((p[0] > 200 and p[1] > 180 and p[2] < 100) for p in ring)


def test_annotator_episodes_on_a_few_seeds():
    recs = [run_annotator(TASK, seed) for seed in range(20)]
    for r in recs:
        assert r.done and 50 <= len(r) <= 600
        assert r.steps[-1].element == "DONE"
    st = episode_stats(recs)
    assert st["success_rate"] >= 0.9
    # Mistakes are followed by an UNDO in most episodes that make them.
    for r in recs:
        for i, step in enumerate(r.steps):
            if step.is_mistake and r.success:
                assert any(s.element == "UNDO" for s in r.steps[i + 1:])


@pytest.mark.parametrize("persona", ["thorough", "hasty"])
def test_other_personas_run_and_differ(persona):
    rec = run_annotator(TASK, 0, persona)
    assert rec.done and len(rec) >= 40
    pairs = {"thorough": 6, "hasty": 4}[persona]
    assert sum(s.category == "place" and s.phase == "place" for s in rec.steps) >= 2 * pairs


def expert(s, stream=0):
    persona = get_task_class(TASK).personas["default"]
    return get_annotator_class(TASK).expert(s, persona, np.random.default_rng(stream))


def finish(s, annotator, limit=300):
    """Let ``annotator`` finish the episode; the clicks it made, as (element, phase)."""
    made = []
    for intent in annotator.resume():
        res = s.step(intent.x, intent.y)
        made.append((res.element, intent.phase))
        if s.done or len(made) >= limit:
            break
    return made


def test_persona_names_every_mistake_and_notice_rate():
    p = AlignPersona()
    assert {"mismatch_rate", "single_rate"} <= set(p.MISTAKE_FIELDS)
    assert "late_notice_rate" in p.NOTICE_FIELDS
    e = p.expert()
    assert e.mismatch_rate == e.single_rate == 0.0
    assert e.notice_rate == e.late_notice_rate == 1.0


def test_target_point_follows_the_view():
    s = Session(TASK, 0)
    t = s.task
    k = t.shared[0]
    f = t.features[k]
    assert t.target_point(k) == (f.x, f.y) and t.target_point(-1) is None
    s.click_button("CH-B")
    assert t.target_point(k) == (f.bx, f.by)
    s.click_button("OVERLAY")  # the overlay is drawn in A's frame
    assert t.target_point(k) == (f.x, f.y)


def test_the_expert_undoes_back_to_a_buried_mismatch_and_pairs_it_again():
    s = Session(TASK, 4)
    t = s.task
    f, g, h = shared(t, 3)
    for a, (bx, by) in ((f, (g.bx, g.by)), (g, (g.bx, g.by)), (h, (h.bx, h.by))):
        s.click_button("CH-A")
        s.click_data(a.x, a.y)
        s.click_button("CH-B")
        s.click_data(bx, by)  # the first pair is mismatched
    assert t.n_wrong() == 1
    made = finish(s, expert(s))
    assert s.done and t.score()[1] and t.n_wrong() == 0
    # It sees the mismatch in the overlay, then UNDOes the two later pairs and the wrong partner.
    assert made[0] == ("OVERLAY", "verify")
    first_place = next(i for i, (e, _) in enumerate(made) if e == "canvas")
    assert sum(e == "UNDO" for e, _ in made[:first_place]) == 5
    # The first A landmark stays; its partner is searched for again, as a correction.
    assert made[first_place] == ("canvas", "correct") and len(t.ann[0]) >= 3
    assert np.hypot(t.ann[0][0][0] - f.x, t.ann[0][0][1] - f.y) < 1


def test_a_landmark_without_partner_is_looked_for_in_b_then_undone():
    s = Session(TASK, 5)
    t = s.task
    only_a = next(f for f in t.features if f.channels == "A")
    s.click_data(only_a.x, only_a.y)
    assert t.n_wrong() == 1
    e = expert(s)
    made = []
    while t.n_wrong():
        intent = e.next_intent()
        made.append((s.step(intent.x, intent.y).element, intent.phase))
    assert made[0] == ("CH-B", "select") and made[-2:] == [("CH-A", "correct"), ("UNDO", "correct")]
    assert len(made) <= get_task_class(TASK).correction_length
    assert t.ann == ((), ())


def test_the_expert_removes_landmarks_it_would_not_have_placed():
    s = Session(TASK, 6)
    t = s.task
    f = shared(t, 1)[0]
    s.click_button("CH-B")
    s.click_data(f.bx, f.by)  # a B landmark before any A
    s.click_data(20, 20)
    s.click_button("CH-A")
    s.click_data(f.x, f.y)  # pairs with the first B; the second B waits for a partner
    assert len(t.ann[1]) == 2
    made = finish(s, expert(s))
    assert s.done and t.score()[1]
    assert ("UNDO", "correct") in made


def test_the_expert_finishes_from_random_clicks_and_mid_episode_takeovers():
    for seed in range(10):
        s = Session(TASK, seed)
        rng = np.random.default_rng(seed)
        e = expert(s)
        # Half the clicks are someone else's: the expert's plans must give way to the state.
        while s.steps < 80:
            intent = e.next_intent()
            if rng.random() < 0.5:
                s.step(*random_element_click(s, rng))
            else:
                s.step(intent.x, intent.y)
            if s.done:
                break
        if not s.done:
            finish(s, e)
        assert s.done and s.task.score()[1], seed


def test_decisions_are_keyed_so_a_second_annotator_agrees_on_every_button():
    cls = get_task_class(TASK)
    for seed in range(5):
        s = Session(TASK, seed)
        persona = cls.personas["default"].without_mistakes()
        actor = get_annotator_class(TASK)(s, persona, np.random.default_rng(1))
        labeller = expert(s, stream=2)
        for intent in actor.script():
            label = labeller.next_intent()
            assert s.hit(intent.x, intent.y)[0] == s.hit(label.x, label.y)[0]
            assert intent.phase == label.phase and intent.target == label.target
            s.step(intent.x, intent.y)


def test_status_shows_the_pairs_asked_for_and_default_presses_done_when_they_are_placed():
    for seed in range(8):
        s = Session(TASK, seed)
        N = s.task.n_target
        assert N == min(5, len(s.task.shared)) and f"PAIRS 0/{N}" in s.task.status()[0]
        rec = run_annotator(TASK, seed)
        # A fixed survey: two A/B toggles, then the overlay.
        assert [st.element for st in rec.steps[:5]] == ["CH-B", "CH-A", "CH-B", "CH-A", "OVERLAY"]
        # DONE in the overlay right after the last pair's check: no final tour of the pairs.
        assert rec.steps[-1].element == "DONE" and rec.steps[-2].element == "OVERLAY"
        assert rec.steps[-3].category == "place"
        assert not any(st.phase == "verify" and st.element in ("CH-A", "CH-B") for st in rec.steps)
        assert rec.success
    # With rotation fitted, one pair more is asked for and placed.
    s = Session(TASK, 0, {"max_rotation_deg": 5.0})
    assert s.task.n_target == min(6, len(s.task.shared))


def test_thorough_persona_keeps_its_final_check():
    rec = run_annotator(TASK, 0, "thorough")
    # Every pair once more in a channel and the overlay before DONE.
    final = [st.element for st in rec.steps[-5:]]
    assert final[-1] == "DONE" and final[-2] == "OVERLAY" and final[-3] in ("CH-A", "CH-B")
    assert rec.steps[-3].phase == "verify"
