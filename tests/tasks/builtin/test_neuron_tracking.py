"""neuron_tracking: its scene, GUI rules, score, and the annotator's peeks and wrong turns."""

import numpy as np
import pytest

from annobc.tasks import Session, get_annotator_class, run_annotator
from annobc.tasks.builtin.neuron_tracking import CROSS_COLOR, NEXT_COLOR, NODE_COLOR, PREV_COLOR
from annobc.tasks.contract import random_element_click

CENTRE = 56.0  # the canvas centre of the default 112x112 grid

TASK = "neuron_tracking"


def goto(s, z):
    while s.task.z < z:
        s.click_button("+Z")
    while s.task.z > z:
        s.click_button("-Z")


def trace_all(s):
    """A perfect trace: a node on the target's centre in every slice, from the current slice on."""
    t = s.task
    for z in range(t.n_slices):
        goto(s, z)
        res = s.click_data(*t.centres[0, z])
        assert res.effect.annotated and not res.effect.wrong


def test_scene_follows_the_parameters():
    for seed in range(20):
        t = Session(TASK, seed).task
        p = t.params
        assert p.n_slices[0] <= t.n_slices <= p.n_slices[1]
        assert p.n_neurites[0] <= len(t.centres) <= p.n_neurites[1]
        assert p.n_contacts[0] <= len(t.contacts) <= p.n_contacts[1]
        assert np.all(t.radii >= 0.9 * p.radius[0]) and np.all(t.radii <= 1.1 * p.radius[1])
        assert tuple(t.centres[0, 0]) == (CENTRE, CENTRE)  # the target under the crosshair
        # The target stays on the canvas and moves smoothly.
        assert t.centres[0].min() >= 13.9 and t.centres[0].max() <= p.size - 1 - 13.9
        assert np.hypot(*np.diff(t.centres[0], axis=0).T).max() <= p.speed[1] + 1e-6
        gaps = np.hypot(*(t.centres[:, :, :] - t.centres[0][None]).transpose(2, 0, 1)) \
            - t.radii - t.radii[0][None]
        contact_ids = {c.neurite for c in t.contacts}
        for k in range(1, len(t.centres)):
            if k in contact_ids:
                c = next(c for c in t.contacts if c.neurite == k)
                # Touches the target at its contact slice (membranes meet), never overlaps it.
                assert gaps[k].min() >= p.touch_gap - 1e-6
                assert gaps[k, c.z] <= p.touch_gap + 0.5
                assert gaps[k, c.z + 3] > gaps[k, c.z] + 1.0  # and diverges
            else:
                assert gaps[k].min() >= 3.0  # free neurites never touch the target


def test_setup_is_lazy_and_a_slice_is_rendered_once():
    s = Session(TASK, 0)
    assert s.task._view_cache == {}
    a = s.render()
    assert list(s.task._view_cache) == [0]
    img = s.task.view_image()
    assert img.shape == (112, 112, 3) and img.dtype == np.uint8
    # EM-like: mostly mid grey with dark membranes, a grey image (R = G = B).
    assert np.array_equal(img[..., 0], img[..., 2])
    assert 110 < img.mean() < 180 and (img < 90).mean() > 0.05
    s.click_button("+Z")
    assert not np.array_equal(s.render(), a)
    s.click_button("-Z")
    assert np.array_equal(s.render(), a) and sorted(s.task._view_cache) == [0, 1]


def test_z_navigation_is_clamped_and_status_shows_z_and_nodes():
    s = Session(TASK, 1)
    t = s.task
    s.click_button("-Z")
    assert t.z == 0
    for _ in range(60):
        s.click_button("+Z")
    assert t.z == t.n_slices - 1
    assert t.status() == (f"TRACE NEURON  Z {t.n_slices - 1}/{t.n_slices - 1}", f"NODES 0/{t.n_slices}")
    assert t.selected() == ()


def test_a_click_places_the_node_for_this_slice_and_a_second_replaces_it():
    s = Session(TASK, 2)
    t = s.task
    goto(s, 3)
    cu, cv = t.centres[0, 3]
    assert s.click_data(cu + 8, cv).effect.wrong  # off the target
    assert t.n_nodes() == 1 and t.n_wrong() == 1 and t.status()[1] == f"NODES 1/{t.n_slices}"
    res = s.click_data(cu, cv)  # replaces the node of this slice
    assert res.effect.annotated and not res.effect.wrong
    assert t.n_nodes() == 1 and t.n_wrong() == 0
    res = s.click_button("UNDO")  # the replacement is undoable: the wrong node is back
    assert t.n_wrong() == 1 and not res.removed_mistake
    res = s.click_button("UNDO")
    assert res.removed_mistake and t.n_nodes() == 0


def test_perfect_trace_scores_one_and_missing_or_wrong_nodes_lower_it():
    s = Session(TASK, 3)
    t = s.task
    trace_all(s)
    assert t.score() == (1.0, True)
    # One slice without a node: coverage < 1 fails.
    s.click_button("UNDO")
    score, success = t.score()
    assert score == pytest.approx((t.n_slices - 1) / t.n_slices) and not success
    # Put it back, then move one node onto a neighbour at a contact: accuracy drops by 1/Z.
    goto(s, t.n_slices - 1)
    s.click_data(*t.centres[0, t.n_slices - 1])
    c = t.contacts[0]
    goto(s, c.z)
    res = s.click_data(*t.centres[c.neurite, c.z])
    assert res.effect.wrong and t.n_wrong() == 1 and t.wrong_slices() == (c.z,)
    score, success = t.score()
    assert score == pytest.approx(1 - 1 / t.n_slices) and success  # accuracy >= 0.95 still
    # A second wrong node takes accuracy below 0.95 on a stack of < 40 slices.
    c2 = t.contacts[-1] if len(t.contacts) > 1 else None
    z2 = c2.z if c2 else c.z + 1
    k2 = c2.neurite if c2 else c.neurite
    goto(s, z2)
    s.click_data(*t.centres[k2, z2])
    assert t.n_wrong() == 2
    assert t.score()[1] == (1 - 2 / t.n_slices >= 0.95)
    s.click_button("UNDO")
    assert t.n_wrong() == 1
    s.click_button("DONE")
    assert s.done


def test_random_nodes_score_near_zero():
    s = Session(TASK, 4)
    rng = np.random.default_rng(0)
    for z in range(s.task.n_slices):
        goto(s, z)
        s.click_data(*rng.uniform(0, 111, 2))
    score, success = s.task.score()
    assert score < 0.1 and not success


def test_crosshair_at_z0_and_faint_previous_node():
    s = Session(TASK, 5)
    t = s.task
    frame = s.render()
    c = s.layout.canvas
    x, y = c.x0 + int(CENTRE), c.y0 + int(CENTRE)
    assert tuple(frame[y, x + 8]) == CROSS_COLOR and tuple(frame[y - 8, x]) == CROSS_COLOR
    s.click_data(*t.centres[0, 0])
    frame = s.render()
    assert tuple(frame[y, x]) == NODE_COLOR  # this slice's node, bright
    s.click_button("+Z")
    frame = s.render()
    assert tuple(frame[y, x + 8]) != CROSS_COLOR  # the crosshair is on slice 0 only
    # The previous slice's node is drawn faintly (a thin x in muted red), this slice has none.
    assert tuple(frame[y, x]) == PREV_COLOR and tuple(frame[y - 1, x - 1]) == PREV_COLOR
    assert max(PREV_COLOR) < max(NODE_COLOR) and tuple(frame[y - 1, x]) != NODE_COLOR
    # Back on slice 0, the node there is bright and the next slice's (none yet) is not drawn.
    s.click_data(*t.centres[0, 1])
    s.click_button("-Z")
    frame = s.render()
    nx, ny = (c.x0 + int(round(t.centres[0, 1][0])), c.y0 + int(round(t.centres[0, 1][1])))
    assert tuple(frame[ny, nx]) in (NEXT_COLOR, NODE_COLOR)


def test_annotator_peeks_at_contacts_and_undoes_wrong_turns():
    peeks = wrong_turns = 0
    for seed in range(25):
        rec = run_annotator(TASK, seed)
        t = Session(TASK, seed).task
        assert rec.success and rec.steps[-1].element == "DONE"
        steps = rec.steps
        for a, b in zip(steps, steps[1:]):
            if a.element == "+Z" and a.phase == "inspect" and b.element == "-Z" and b.phase == "inspect":
                peeks += 1
        # A wrong turn: wrong nodes on consecutive slices, then back with -Z and as many UNDOs,
        # each on the slice of the node it takes back (-Z, UNDO, -Z, UNDO, ...).
        i = 0
        while i < len(steps):
            if steps[i].is_mistake and steps[i + 1].element == "+Z":
                j, wrong = i, 0
                while steps[j].element in ("canvas", "+Z"):
                    wrong += steps[j].is_mistake
                    j += 1
                if steps[j].element == "-Z" and steps[j].phase == "correct":
                    undos = 0
                    while steps[j].element in ("-Z", "UNDO"):
                        if steps[j].element == "UNDO":
                            assert steps[j - 1].element == "-Z"  # moved onto the node's slice
                            undos += 1
                        j += 1
                    assert undos == wrong and steps[j].element == "canvas"
                    assert steps[j].is_correction and not steps[j].is_mistake
                    wrong_turns += 1
                i = j
            i += 1
        assert len(t.contacts) >= 1
    assert peeks >= 20 and wrong_turns >= 2


def test_personas_differ():
    careful = run_annotator(TASK, 0, "careful")
    hasty = run_annotator(TASK, 0, "hasty")
    default = run_annotator(TASK, 0)
    n_slices = Session(TASK, 0).task.n_slices
    # The careful one reviews the whole trace before DONE; the hasty one never surveys or reviews.
    assert sum(s.phase == "verify" for s in careful.steps) >= n_slices - 1
    assert not any(s.phase in ("survey", "verify") for s in hasty.steps)
    assert careful.success and default.success
    assert len(careful) > len(default)


# -- the expert: a policy of the stack's state -------------------------------------------------
def expert_of(s, seed=0):
    cls = get_annotator_class(TASK)
    return cls.expert(s, s.task_cls.personas["default"], np.random.default_rng(seed))


def finish(s, expert):
    for intent in expert.resume():
        s.step(intent.x, intent.y)
        if s.done or s.steps > 600:
            break
    return s.done and s.task.score()[1]


def test_from_a_wrong_turn_the_expert_goes_back_undoes_it_and_finishes():
    s = Session(TASK, 1)
    t = s.task
    c = t.contacts[0]
    for z in range(c.z):
        goto(s, z)
        s.click_data(*t.centres[0, z])
    for z in range(c.z, c.z + 3):  # three nodes on the neighbour, then one slice further
        goto(s, z)
        assert s.click_data(*t.centres[c.neurite, z]).effect.wrong
    goto(s, c.z + 3)
    expert = expert_of(s)
    clicks = []
    for _ in range(7):
        intent = expert.next_intent()
        clicks.append((s.hit(intent.x, intent.y)[0], intent.is_correction))
        s.step(intent.x, intent.y)
    # Each UNDO on the slice of the node it takes back, where that node is drawn.
    assert clicks == [("-Z", True), ("UNDO", True)] * 3 + [("canvas", True)]
    assert t.z == c.z and t.n_wrong() == 0 and t.ann[c.z + 1] is None
    assert finish(s, expert)


def test_the_expert_replaces_a_wrong_node_that_undo_cannot_take_back():
    s = Session(TASK, 2)
    t = s.task
    goto(s, 4)
    s.click_data(*(t.centres[0, 4] + 8))  # wrong, then a good node after it on another slice
    goto(s, 6)
    s.click_data(*t.centres[0, 6])
    expert = expert_of(s)
    elements = []
    while t.n_wrong():
        intent = expert.next_intent()
        elements.append(s.hit(intent.x, intent.y)[0])
        s.step(intent.x, intent.y)
    assert elements == ["-Z", "-Z", "canvas"]  # UNDO would have removed the good node on 6
    assert t.ann[6] is not None and t.ann[6][2]
    assert finish(s, expert)


def test_the_expert_finishes_after_random_clicks_that_undid_good_work():
    for seed in range(5):
        s = Session(TASK, seed)
        trace_all(s)
        rng = np.random.default_rng(seed)
        for _ in range(40):
            s.step(*random_element_click(s, rng))
        assert finish(s, expert_of(s, seed)), seed


def test_the_expert_makes_no_mistakes_and_peeks_as_the_persona_does():
    peeks = 0
    for seed in range(10):
        s = Session(TASK, seed)
        expert = expert_of(s, seed)
        for intent in expert.script():
            res = s.step(intent.x, intent.y)
            assert not res.effect.wrong
            peeks += intent.phase == "inspect"
        assert s.task.score() == (1.0, True)
    assert peeks > 0


def test_decisions_do_not_depend_on_click_noise():
    """Two annotators of an episode with different click-noise generators make the same choices."""
    cls = get_annotator_class(TASK)
    persona = Session(TASK, 0).task_cls.personas["hasty"]
    for seed in range(10):
        runs = []
        for noise in (1, 2):
            s = Session(TASK, seed)
            ann = cls(s, persona, np.random.default_rng(noise))
            runs.append([(s.step(i.x, i.y).element, i.phase) for i in ann.script()])
        assert runs[0] == runs[1], seed


def test_undo_change_names_the_slice_undo_would_change():
    s = Session(TASK, 3)
    t = s.task
    assert t.undo_change() is None
    s.click_data(*t.centres[0, 0])
    goto(s, 2)
    s.click_data(*t.centres[0, 2])
    first = t.ann[2]
    s.click_data(*(t.centres[0, 2] + 1))  # replaces the node on slice 2
    assert t.undo_change() == (2, first)
    s.click_button("UNDO")
    assert t.undo_change() == (2, None)
    s.click_button("UNDO")
    assert t.undo_change() == (0, None)


def test_target_point_is_the_target_on_the_slice_on_view():
    s = Session(TASK, 4)
    t = s.task
    goto(s, 7)
    assert t.target_point(0) == tuple(t.centres[0, 7])
    assert t.target_point(1) is None and t.target_point(-1) is None


def test_the_default_presses_done_as_soon_as_every_slice_has_its_node():
    for seed in range(8):
        rec = run_annotator(TASK, seed)
        assert [st.element for st in rec.steps[-2:]] == ["canvas", "DONE"], seed
        assert not any(st.phase in ("survey", "verify") for st in rec.steps)
