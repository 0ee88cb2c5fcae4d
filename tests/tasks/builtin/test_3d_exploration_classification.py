"""3d_exploration_classification: its GUI rules, its score, its scenes, its annotator's mistakes and
its policy from states it did not make."""

import numpy as np
import pytest

from annobc.tasks import Session, frame_hash, run_annotator
from annobc.tasks.builtin.exploration_classification_3d import (
    CLASSES, ELLIPSOID, PAIR, SPHERE, TORUS, ExplorationAnnotator, ExplorationClassification3D,
    scan_events)

TASK = "3d_exploration_classification"


def seed_of_class(label, start=0):
    return next(seed for seed in range(start, start + 200)
                if Session(TASK, seed).task.label == label)


def test_labels_fit_the_panel_and_classes_are_select_buttons():
    cls = ExplorationClassification3D
    for b in cls.buttons:
        assert len(b.label) <= 9
    assert [b.label for b in cls.buttons if b.category == "select"] == list(CLASSES)
    assert cls.chance_level == 0.25


def test_view_opens_at_the_middle_slice_and_z_is_clamped():
    s = Session(TASK, 0)
    t = s.task
    assert t.z == t.n_slices // 2
    assert t.status()[0].startswith(f"Z {t.z}/{t.n_slices - 1}  CLASS NONE")
    for _ in range(t.n_slices):
        s.click_button("-Z")
    assert t.z == 0
    for _ in range(2 * t.n_slices):
        s.click_button("+Z")
    assert t.z == t.n_slices - 1 and t.position() == 1.0
    assert t.status()[0].startswith(f"Z {t.n_slices - 1}/")


def test_class_buttons_select_highlight_and_status():
    s = Session(TASK, 1)
    t = s.task
    assert t.selected() == ()
    res = s.click_button("TORUS")
    assert res.category == "select" and res.effect.annotated
    assert t.selected() == ("TORUS",) and "CLASS TORUS" in t.status()[0]
    # The selected class is a radio button: clicking it again changes nothing.
    res = s.click_button("TORUS")
    assert not res.effect.annotated and t.selected() == ("TORUS",)
    s.click_button("2 SPHERES")
    assert t.selected() == ("2 SPHERES",) and "CLASS 2 SPHERES" in t.status()[0]


@pytest.mark.parametrize("label", [SPHERE, ELLIPSOID, TORUS, PAIR])
def test_right_class_scores_one_wrong_class_is_a_mistake_and_undo_removes_it(label):
    s = Session(TASK, seed_of_class(label))
    t = s.task
    assert t.score() == (0.0, False)  # nothing selected yet
    wrong = CLASSES[(label + 1) % 4]
    res = s.click_button(wrong)
    assert res.effect.annotated and res.effect.wrong and t.n_wrong() == 1
    assert t.score() == (0.0, False)
    res = s.click_button("UNDO")
    assert res.removed_mistake and t.ann is None and t.n_wrong() == 0 and t.selected() == ()
    res = s.click_button(CLASSES[label])
    assert res.effect.annotated and not res.effect.wrong
    assert t.score() == (1.0, True)
    s.click_button("DONE")
    assert s.done


def test_reselecting_fixes_a_wrong_choice_and_undo_goes_back_to_it():
    s = Session(TASK, seed_of_class(TORUS))
    t = s.task
    s.click_button("SPHERE")
    assert t.n_wrong() == 1
    s.click_button("TORUS")
    assert t.n_wrong() == 0 and t.score() == (1.0, True)
    s.click_button("UNDO")  # undoes the last selection: back to the wrong one
    assert t.selected() == ("SPHERE",) and t.n_wrong() == 1


def test_canvas_click_pins_a_crosshair_that_is_not_an_annotation():
    s = Session(TASK, 2)
    t = s.task
    before = frame_hash(s.render())
    res = s.click_data(40, 50)
    assert res.category == "place" and not res.effect.annotated and not res.effect.wrong
    assert t.pin == (40.0, 50.0) and "PIN 40,50" in t.status()[1] and t.ann is None
    assert frame_hash(s.render()) != before
    s.click_button("+Z")  # drawn on every slice
    frame = s.render()
    c = s.layout.canvas
    assert (frame[c.y0 + 50, c.x0 + 40 + 5] == (255, 215, 60)).all()
    assert (frame[c.y0 + 50, c.x0 + 40] != (255, 215, 60)).any()  # the centre is left open
    s.click_button("UNDO")  # view state is not undone
    assert t.pin == (40.0, 50.0)


def _stats(label, seeds=range(40)):
    """Per-slice brightness of the object's axis and of its brightest ring, for one class."""
    out = []
    for seed in seeds:
        t = Session(TASK, seed).task
        if t.label != label:
            continue
        prof = t.profiles()
        peak = prof.max(1)
        vis = np.nonzero(peak >= 0.3 * peak.max())[0]
        out.append((t, prof, peak, vis))
    assert out
    return out


def test_every_slice_of_sphere_ellipsoid_and_pair_is_a_disc():
    # A single slice cannot tell these three apart: each shows a disc, brightest on its axis.
    for label in (SPHERE, ELLIPSOID, PAIR):
        for _, prof, peak, vis in _stats(label):
            assert np.allclose(prof[vis, 0], peak[vis], rtol=0.02)


def test_classes_differ_over_the_scan():
    z = ExplorationClassification3D.Params().z_step
    # Ellipsoid: visible over more slices than its disc is wide; a sphere about as many.
    for label, lo, hi in ((SPHERE, 0.6, 1.5), (ELLIPSOID, 1.6, 3.0)):
        for t, _, _, vis in _stats(label):
            ratio = (vis[-1] - vis[0] + 1) * z / (2 * t.shape["r"])
            assert lo <= ratio <= hi, (label, ratio)
    # Torus: a hole in its middle slices, blurred over at its ends.
    for _, prof, peak, vis in _stats(TORUS):
        centre = prof[vis, 0] / peak[vis]
        assert centre.min() < 0.3
        assert centre[len(centre) // 2] < 0.3 and min(centre[0], centre[-1]) > centre.min()
    # Two spheres: the disc shrinks, (nearly) vanishes between them and comes back.
    for t, _, peak, vis in _stats(PAIR):
        inner = peak[vis[0]:vis[-1] + 1]
        assert inner.min() < 0.3 * peak.max()


def test_scene_is_one_object_inside_the_stack_and_setup_is_lazy():
    for seed in range(20):
        t = Session(TASK, seed).task
        assert t._profiles is None  # nothing is rendered before the first view
        assert 32 <= t.n_slices <= 40
        _, _, _, vis = _stats(t.label, [seed])[0]
        assert vis[0] >= 1 and vis[-1] <= t.n_slices - 2


def test_annotator_premature_choice_is_undone_then_right_class_selected():
    found = False
    for seed in range(60):
        rec = run_annotator(TASK, seed)
        steps = rec.steps
        for i, st in enumerate(steps):
            if st.is_mistake:
                found = True
                j = next(k for k in range(i + 1, len(steps)) if steps[k].category == "undo")
                assert steps[j].is_correction and steps[j].phase == "correct"
                assert all(steps[k].mistake_present for k in range(i + 1, j + 1))
                assert rec.success
    assert found


def test_personas_scan_differently():
    a = run_annotator(TASK, 4)
    b = run_annotator(TASK, 4, "quick")
    c = run_annotator(TASK, 4, "careless")
    t = Session(TASK, 4).task
    # default surveys down and up the whole stack, then presses DONE right after the select;
    # quick surveys up only and sweeps on to the bottom of the stack first; careless also comes
    # back up (to verify)
    assert [s.category for s in a.steps[-2:]] == ["select", "done"]
    first = [s.element for s in a.steps[:t.n_slices - 1 - t.n_slices // 2]]
    assert first == ["+Z"] * len(first)  # down to the last slice first
    assert b.steps[0].element == "-Z" and c.steps[0].element == "-Z"
    assert not any(s.phase == "verify" for s in a.steps + b.steps)
    assert any(s.phase == "verify" for s in c.steps)
    assert round(b.steps[-1].position * (t.n_slices - 1)) == t.n_slices - 1
    assert len(c) > len(b) >= 50 and len(a) >= 50
    for rec in (a, b, c):
        assert sum(s.category == "place" for s in rec.steps) == 1  # no re-pin


def test_annotator_selects_only_after_the_whole_object_was_seen():
    # The object ends visibly before "quick" selects a sphere; the other classes show earlier.
    for seed in range(10):
        rec = run_annotator(TASK, seed, "quick")
        t = Session(TASK, seed).task
        if t.label != SPHERE:
            continue
        _, _, _, vis = _stats(t.label, [seed])[0]
        final = [s for s in rec.steps if s.category == "select" and not s.is_mistake][-1]
        z = round(final.position * (t.n_slices - 1))
        assert z > vis[-1]


def test_default_selects_where_the_class_shows_and_presses_done_on_the_next_click():
    from annobc.tasks.builtin.exploration_classification_3d import GONE
    seen = set()
    for seed in range(24):
        rec = run_annotator(TASK, seed)
        t = Session(TASK, seed).task
        ev = scan_events(t)
        steps = rec.steps
        assert rec.success and steps[-1].category == "done"
        last = steps[-2]  # the click before DONE is the (right) selection, on the same slice
        assert last.category == "select" and not last.is_mistake
        assert _z(t, last) == _z(t, steps[-1]) == ev.deciding
        top = max(i for i, st in enumerate(steps) if _z(t, st) == 0)  # the sweep begins here
        assert all(_z(t, st) <= ev.deciding for st in steps[top:])  # no sweep on, no climb back
        assert all(st.element == "+Z" for st in steps[top:] if st.category == "navigate")
        # The evidence lies on the deciding slice or in the 8 frames before it.
        z, prof = ev.deciding, t.profiles()
        peak = prof.max(1)
        if t.label == TORUS:
            assert ev.visible[z] and prof[z, 0] < 0.3 * peak[z]  # the hole is on screen
        elif t.label == PAIR:  # the second sphere is back, the dark gap and the first in view
            assert ev.visible[z] and not ev.visible[z - 1]
            assert ev.visible[z - 8:z - 1].any()
        elif t.label == ELLIPSOID:  # still wide, and it reached full width in the last frames
            assert ev.visible[z] and z - ev.guess <= 7
        else:  # gone for GONE slices (or the stack ended), its taper in the last frames
            assert not ev.visible[ev.last + 1:z + 1].any()
            assert z == min(ev.last + GONE, t.n_slices - 1) and z - ev.last <= 7
        seen.add(t.label)
    assert seen == {SPHERE, ELLIPSOID, TORUS, PAIR}


def test_default_survey_turns_at_the_stack_ends_and_pins_on_the_way_up():
    for seed in range(8):
        rec = run_annotator(TASK, seed)
        t = Session(TASK, seed).task
        ev, n = scan_events(t), t.n_slices
        zs = [_z(t, st) for st in rec.steps]
        bottom, top = zs.index(n - 1), max(i for i, z in enumerate(zs) if z == 0)
        assert all(st.element == "+Z" for st in rec.steps[:bottom])
        between = rec.steps[bottom:top]
        assert [st.element for st in between if st.element != "-Z"] == ["canvas"]
        pin = next(i for i in range(bottom, top) if rec.steps[i].element == "canvas")
        assert zs[pin] == ev.last  # the object's first slice seen from below
        # The sweep down runs with the crosshair shown: no other canvas click.
        assert sum(st.category == "place" for st in rec.steps) == 1


def test_a_sphere_is_taken_as_gone_only_past_any_gap_between_two_spheres():
    from annobc.tasks.builtin.exploration_classification_3d import GONE
    gaps = []
    for seed in range(600):
        t = Session(TASK, seed).task
        if t.label == PAIR:
            ev = scan_events(t)
            assert ev.deciding == ev.refuted  # the second sphere's first visible slice
            gaps.append(ev.refuted - ev.guess)  # the dark slices between the two spheres
    assert gaps and max(gaps) < GONE


def _z(t, step):
    return round(step.position * (t.n_slices - 1))


def test_premature_guess_stands_until_the_slice_that_refutes_it():
    found = 0
    for seed in range(80):
        rec = run_annotator(TASK, seed)
        t = Session(TASK, seed).task
        ev = scan_events(t)
        steps = rec.steps
        first = next((i for i, st in enumerate(steps) if st.is_mistake), None)
        if first is None or _z(t, steps[first]) != ev.guess or ev.guess == ev.decision:
            continue  # no mistake, or a slip at the decision
        found += 1
        undo = next(i for i in range(first, len(steps)) if steps[i].category == "undo")
        assert _z(t, steps[undo]) == ev.refuted
        assert all(st.category in ("navigate", "place") for st in steps[first + 1:undo])
    assert found >= 3


def _annotator(seed, persona="default"):
    s = Session(TASK, seed)
    persona = ExplorationClassification3D.personas[persona]
    return s, ExplorationAnnotator(s, persona, np.random.default_rng(seed))


def _element(s, intent):
    return s.hit(intent.x, intent.y)[0]


@pytest.mark.parametrize("persona", ["default", "quick"])
def test_a_wrong_class_it_did_not_choose_is_removed_at_once(persona):
    s, ann = _annotator(5, persona)
    t = s.task
    for _ in range(3):
        s.click_button("+Z")
    s.click_button(CLASSES[(t.label + 1) % 4])
    intent = ann.next_intent()
    assert intent.is_correction and intent.phase == "correct"
    assert _element(s, intent) == ("UNDO" if persona == "default" else CLASSES[t.label])
    s.step(intent.x, intent.y)
    assert t.n_wrong() == 0


def test_its_guess_is_no_longer_left_once_another_hand_changed_the_class():
    rate = ExplorationClassification3D.personas["default"].mistake_rate
    seed = next(sd for sd in range(200) if _annotator(sd)[1].decide(("premature",), rate))
    s, ann = _annotator(seed)
    t = s.task
    intents = ann.script()
    while t.ann is None:
        i = next(intents)
        s.step(i.x, i.y)
    guess = t.ann
    assert guess != t.label and t.z < ann.events.refuted
    other = next(k for k in range(4) if k not in (guess, t.label))
    s.click_button(CLASSES[other])
    # Before the refuting slice, it removes the other hand's class and then its own guess too.
    for _ in range(2):
        i = next(intents)
        assert _element(s, i) == "UNDO"
        s.step(i.x, i.y)
    assert t.ann is None
    for i in intents:
        s.step(i.x, i.y)
    assert s.done and t.score() == (1.0, True)


def test_steps_on_the_object_record_its_centre():
    rec = run_annotator(TASK, 9)
    s = Session(TASK, 9)
    x, y = s.mapper.to_screen(s.task.cx, s.task.cy)
    on_object = [st for st in rec.steps if st.target == 0]
    assert on_object and all((st.target_x, st.target_y) == (x, y) for st in on_object)
    centre = round(s.task.cz / s.task.params.z_step)
    assert all(st.target_offset == _z(s.task, st) - centre for st in on_object)


def test_every_crosshair_click_moves_the_crosshair():
    # Re-centring is a careful click on the centre pixel, made only where the crosshair is not
    # there already, so the annotator never clicks the canvas to no effect.
    for seed in range(30):
        s, ann = _annotator(seed)
        for i in ann.script():
            before = s.task.pin
            s.step(i.x, i.y)
            if s.hit(i.x, i.y)[0] == "canvas":
                assert s.task.pin != before, seed
