"""road_network_construction: its GUI rules (panning, tools, snapping), its score and target
points, and its annotator: the mistakes it makes and the states it finishes."""

import math

import numpy as np
import pytest

from annobc.tasks import Session, run_annotator
from annobc.tasks.builtin.road_network_construction import (EDGE_COLOR, NODE_COLOR, PANS,
                                                            PICK_COLOR, RoadAnnotator,
                                                            RoadNetworkConstruction)
from annobc.tasks.episode import annotator_rng

TASK = "road_network_construction"


def show(s, x, y, margin=6):
    """Pan until map point (x, y) is well inside the window."""
    t = s.task
    while x < t.ox + margin:
        s.click_button("LEFT")
    while x > t.ox + t.view - 1 - margin:
        s.click_button("RIGHT")
    while y < t.oy + margin:
        s.click_button("UP")
    while y > t.oy + t.view - 1 - margin:
        s.click_button("DOWN")


def click_map(s, x, y):
    """Click map point (x, y), panning to it first."""
    show(s, x, y)
    t = s.task
    return s.step(*s.mapper.to_screen(x - t.ox, y - t.oy))


def place_nodes(s, points):
    if s.task.tool != "NODE":
        s.click_button("NODE")
    return [click_map(s, x, y) for x, y in points]


def join(s, i, j):
    """Join placed nodes i and j with the EDGE tool; returns the second click's result."""
    if s.task.tool != "EDGE":
        s.click_button("EDGE")
    click_map(s, *s.task.ann.nodes[i])
    return click_map(s, *s.task.ann.nodes[j])


def perfect(seed):
    s = Session(TASK, seed)
    t = s.task
    place_nodes(s, [tuple(p) for p in t.nodes])
    for a, b in t.edges:
        assert not join(s, a, b).effect.wrong
    return s


def test_buttons_and_labels_fit_the_panel():
    labels = [b.label for b in RoadNetworkConstruction.buttons]
    assert labels == ["UP", "DOWN", "LEFT", "RIGHT", "NODE", "EDGE", "UNDO", "DONE"]
    assert all(len(lab) <= 9 for lab in labels)


def test_scene_follows_the_parameters():
    for seed in range(30):
        t = Session(TASK, seed).task
        assert 1.5 * t.view - 14 <= t.map_w <= 2 * t.view and 1.5 * t.view - 14 <= t.map_h <= 2 * t.view
        assert t.max_x % t.params.pan_step == 0 and t.max_y % t.params.pan_step == 0
        assert 8 <= len(t.nodes) <= 12 and 2.0 <= t.road_width <= 3.0
        assert t.view_image().shape == (112, 112, 3) and t.data_shape == (112, 112)
        d = np.hypot(*(t.nodes[:, None] - t.nodes[None]).transpose(2, 0, 1))
        assert d[np.triu_indices(len(t.nodes), 1)].min() >= 15
        # The road graph is connected.
        seen, stack = {0}, [0]
        while stack:
            for b in t.neighbours[stack.pop()]:
                if b not in seen:
                    seen.add(b)
                    stack.append(b)
        assert len(seen) == len(t.nodes)
    curved = [not np.allclose(p[len(p) // 2], (p[0] + p[-1]) / 2, atol=0.5)
              for seed in range(10) for p in Session(TASK, seed).task.paths]
    assert 0 < sum(curved) < len(curved)


def test_pan_buttons_move_the_window_and_clamp_at_the_border():
    s = Session(TASK, 0)
    t = s.task
    s.click_button("UP")
    s.click_button("LEFT")
    assert (t.ox, t.oy) == (0, 0) and t.position() == 0.0
    before = s.render().copy()
    s.click_button("RIGHT")
    assert t.ox == t.params.pan_step and f"VIEW X{t.ox}/{t.max_x} Y0/{t.max_y}" in t.status()[0]
    assert not np.array_equal(before, s.render())
    for _ in range(20):
        s.click_button("RIGHT")
        s.click_button("DOWN")
    assert (t.ox, t.oy) == (t.max_x, t.max_y) and t.position() == 1.0
    # The window shows the map at the offset.
    assert np.array_equal(t.view_image(), t.map_image()[t.max_y:, t.max_x:])


def test_tools_are_highlighted_and_on_the_status_line():
    s = Session(TASK, 1)
    t = s.task
    assert t.tool == "NODE" and t.selected() == ("NODE",) and t.status()[0].startswith("NODE TOOL")
    assert "FIRST" not in t.status()[1]
    s.click_button("EDGE")
    assert t.selected() == ("EDGE",) and t.status()[0].startswith("EDGE TOOL")
    assert t.status()[1].endswith("FIRST -")
    r = s.layout.buttons["EDGE"]
    frame = s.render()
    assert tuple(frame[r.y0 + 1, r.x0 + 1]) == s.screen.theme.selected_face


def test_node_tool_places_in_map_coordinates_and_nodes_show_in_every_view():
    s = Session(TASK, 2)
    t = s.task
    s.click_button("RIGHT")
    s.click_button("DOWN")
    x, y = t.ox + 40, t.oy + 50
    res = s.step(*s.mapper.to_screen(40, 50))
    assert res.category == "place" and res.effect.annotated
    assert t.ann.nodes == ((x, y),)
    assert t.status()[1].startswith(f"NODES 1/{len(t.nodes)}  EDGES 0/{len(t.edges)}")
    frame = s.render()
    cx, cy = s.layout.canvas.x0 + 40, s.layout.canvas.y0 + 50
    assert tuple(frame[cy, cx + 2]) == NODE_COLOR  # the square's right side
    s.click_button("LEFT")  # the node moves with the map
    assert tuple(s.render()[cy, cx + 2 + t.params.pan_step]) == NODE_COLOR


def test_edge_tool_snaps_picks_across_pans_and_joins():
    s = Session(TASK, 3)
    t = s.task
    place_nodes(s, [(20.0, 20.0), (60.0, 30.0), (t.map_w - 20.0, t.map_h - 20.0)])
    s.click_button("EDGE")
    click_map(s, 20.0, 20.0)
    assert t.pick == 0
    res = s.step(*s.mapper.to_screen(90 - t.ox, 90 - t.oy))
    assert not res.effect.annotated and t.pick is None  # a click away from every node drops it
    res = s.step(*s.mapper.to_screen(21.5 - t.ox, 22.0 - t.oy))  # within the snap radius
    assert t.pick == 0 and not res.effect.annotated
    assert t.status()[1].endswith("FIRST 20,20")
    frame = s.render()
    assert (frame == PICK_COLOR).all(-1).any()
    # The pick survives panning: join the far corner node.
    res = click_map(s, t.map_w - 20.0, t.map_h - 20.0)
    assert res.effect.annotated and t.ann.edges == ((0, 2),) and t.pick is None
    assert (s.render() == EDGE_COLOR).all(-1).any()
    # Joining the same pair again adds nothing; clicking the picked node drops the pick.
    assert not join(s, 2, 0).effect.annotated and t.ann.edges == ((0, 2),)
    click_map(s, 60.0, 30.0)
    click_map(s, 60.0, 30.0)
    assert t.pick is None
    # A tool change and UNDO drop the pick.
    click_map(s, 60.0, 30.0)
    s.click_button("NODE")
    assert t.pick is None
    s.click_button("EDGE")
    click_map(s, 60.0, 30.0)
    s.click_button("UNDO")
    assert t.pick is None and t.ann.edges == ()


def test_perfect_annotation_scores_one_and_succeeds():
    s = perfect(4)
    t = s.task
    assert t.n_wrong() == 0 and t.score() == (1.0, True) and t.f1s() == (1.0, 1.0)
    s.click_button("DONE")
    assert s.done


def test_an_off_junction_node_is_a_mistake_that_undo_removes():
    s = Session(TASK, 5)
    t = s.task
    x, y = t.nodes[0]
    res = place_nodes(s, [(x + 5.0, y)])[-1]
    assert res.effect.wrong and t.n_wrong() == 1
    res = s.click_button("UNDO")
    assert res.removed_mistake and t.ann.nodes == () and t.n_wrong() == 0
    assert not place_nodes(s, [(x + 2.0, y + 1.0)])[-1].effect.wrong  # within 3 px
    # A second node on the same junction is a duplicate, hence wrong.
    assert place_nodes(s, [(x, y)])[-1].effect.wrong


def test_wrong_edge_lowers_edge_f1_and_is_undone():
    s = Session(TASK, 6)
    t = s.task
    place_nodes(s, [tuple(p) for p in t.nodes])
    a = 0
    c = next(j for j in range(1, len(t.nodes)) if (0, j) not in t.edge_set)
    res = join(s, a, c)
    assert res.effect.annotated and res.effect.wrong and t.n_wrong() == 1
    node_f1, edge_f1 = t.f1s()
    assert node_f1 == 1.0 and edge_f1 == 0.0 and not t.score()[1]
    assert s.click_button("UNDO").removed_mistake and t.n_wrong() == 0
    for i, j in t.edges:
        join(s, i, j)
    assert t.score() == (1.0, True)
    join(s, a, c)  # one wrong edge too many: both F1s still high, but the score drops
    assert t.score()[0] < 1.0 and t.n_wrong() == 1


def test_a_missed_node_lowers_the_score_without_being_wrong():
    s = Session(TASK, 7)
    t = s.task
    missing = max(range(len(t.nodes)), key=lambda k: len(t.neighbours[k]))
    place_nodes(s, [tuple(p) for k, p in enumerate(t.nodes) if k != missing])
    idx = {k: i for i, k in enumerate(k for k in range(len(t.nodes)) if k != missing)}
    for a, b in t.edges:
        if missing not in (a, b):
            join(s, idx[a], idx[b])
    assert t.n_wrong() == 0
    node_f1, edge_f1 = t.f1s()
    assert node_f1 < 1.0 and edge_f1 < 1.0 and t.score()[0] < 0.95
    # Found later: placing it and joining its roads completes the graph.
    place_nodes(s, [tuple(t.nodes[missing])])
    new = len(t.ann.nodes) - 1
    for b in t.neighbours[missing]:
        join(s, new, idx[b])
    assert t.score() == (1.0, True)


def move_window(s, ox, oy):
    t = s.task
    while t.ox != ox:
        s.click_button("RIGHT" if ox > t.ox else "LEFT")
    while t.oy != oy:
        s.click_button("DOWN" if oy > t.oy else "UP")


def test_target_point_is_the_node_or_the_road_end_still_to_click():
    s = Session(TASK, 10)
    t = s.task
    n = len(t.nodes)
    show(s, *t.nodes[0])
    assert t.target_point(0) == (t.nodes[0][0] - t.ox, t.nodes[0][1] - t.oy)
    assert t.target_point(-1) is None and t.target_point(n + len(t.edges)) is None
    place_nodes(s, [tuple(p) for p in t.nodes])
    a, b = t.edges[2]
    move_window(s, 112, 0)
    assert t.target_point(b) is None  # this scene: road 2 runs from (182, 72) out of the window
    assert t.target_point(n + 2) == t.target_point(a) == (t.nodes[a][0] - 112, t.nodes[a][1])
    s.click_button("EDGE")
    click_map(s, *t.nodes[a])
    assert t.target_point(n + 2) is None  # a is picked; b, still to click, is off the window
    move_window(s, 112, 56)
    assert t.target_point(n + 2) == t.target_point(b) is not None


def drawn(t, points, margin=1):
    """Whether some point of a node (one point) or of an edge (two) lies on the window."""
    if not points:
        return False
    a, b = np.asarray(points[0], float), np.asarray(points[-1], float)
    pts = a + np.linspace(0.0, 1.0, 17)[:, None] * (b - a)
    return any(t.ox + margin <= x <= t.ox + t.view - 1 - margin
               and t.oy + margin <= y <= t.oy + t.view - 1 - margin for x, y in pts)


def expert(s, persona="default"):
    """The labeller of session ``s``: ``persona`` without mistakes, noticing everything."""
    persona = RoadNetworkConstruction.personas[persona]
    return RoadAnnotator.expert(s, persona, annotator_rng(s.task.seed, "test"))


def test_the_expert_finishes_a_state_someone_else_left():
    """Good work with a wrong node under it, the EDGE tool picking an unrelated node, the window
    elsewhere: the expert takes back down to the wrong node, redoes the rest, and succeeds."""
    s = Session(TASK, 11)
    t = s.task
    good = [tuple(p) for p in t.nodes]
    place_nodes(s, good[:2])
    place_nodes(s, [(good[2][0] + 8.0, good[2][1])])  # off every junction
    place_nodes(s, good[2:5])
    join(s, 0, 3)
    s.click_button("EDGE")
    click_map(s, *t.ann.nodes[1])
    s.click_button("RIGHT")
    s.click_button("DOWN")
    assert t.n_wrong() >= 1 and t.pick == 1
    clicks = []
    for intent in expert(s).resume():
        if s.hit(intent.x, intent.y)[0] == "UNDO":
            assert drawn(t, t.latest_annotation())  # UNDO only where what it removes is drawn
        clicks.append(s.step(intent.x, intent.y).element)
    assert s.done and t.score() == (1.0, True)
    # UNDO first, as many times as it takes to reach the wrong node (4 annotations lie above it),
    # panning first where the annotation it takes back is off the window.
    last = max(i for i, c in enumerate(clicks) if c == "UNDO")
    assert clicks[:last + 1].count("UNDO") == 5 and set(clicks[:last + 1]) <= {"UNDO", *PANS}
    assert clicks[0] != "UNDO"  # this state: the latest edge lies off the window


def test_an_expert_makes_no_mistakes_and_leaves_none():
    for seed in range(10):
        s = Session(TASK, seed)
        made = [s.step(i.x, i.y).effect.wrong for i in expert(s, "careless").script()]
        assert s.done and s.task.score()[1] and not any(made)


def test_a_slip_it_does_not_notice_is_left_but_the_expert_takes_it_back():
    """The annotator remembers the slips it chose to leave; a labeller of the same states does not
    share that choice and names UNDO."""
    persona = RoadNetworkConstruction.personas["default"].with_mistakes_scaled(3.0).never_noticing()
    left = 0
    for seed in range(20):
        s = Session(TASK, seed)
        actor = RoadAnnotator(s, persona, annotator_rng(seed, "actor"))
        labeller = expert(s)
        for intent in actor.script():
            label = labeller.next_intent()
            if s.task.n_wrong():
                assert s.hit(label.x, label.y)[0] == "UNDO"
                assert s.hit(intent.x, intent.y)[0] != "UNDO"
                left += 1
                break
            s.step(intent.x, intent.y)
    assert left >= 10


def test_empty_annotation_scores_zero():
    t = Session(TASK, 8).task
    assert t.score() == (0.0, False)


def test_annotator_makes_each_kind_of_mistake_and_fixes_it():
    recs = [run_annotator(TASK, seed) for seed in range(40)]
    assert sum(r.success for r in recs) >= 39
    steps = [st for r in recs for st in r.steps]
    n_undo = sum(st.category == "undo" for st in steps)
    assert n_undo > 0 and all(st.is_correction for st in steps if st.category == "undo")
    # Wrong nodes (off the junction) and wrong edges, both made and both undone.
    wrong = [(r, i) for r in recs for i, st in enumerate(r.steps) if st.is_mistake]
    kinds = set()
    for r, i in wrong:
        t = Session(TASK, r.seed).task
        kinds.add("node" if r.steps[i].target < len(t.nodes) else "edge")
    assert kinds == {"node", "edge"}
    # Missed nodes placed later as corrections (placements flagged is_correction without an undo).
    assert any(st.category == "place" and st.is_correction and st.phase == "correct" for st in steps)
    phases = {st.phase for st in steps}
    # No peeks near the border, no checks after a region (rate 0 in the default persona).
    assert {"survey", "navigate", "place", "select", "correct", "finish"} <= phases
    assert "inspect" not in phases


@pytest.mark.parametrize("persona", ["two_pass", "careless"])
def test_other_personas_run_and_differ(persona):
    a = run_annotator(TASK, 0)
    b = run_annotator(TASK, 0, persona)
    assert b.done and len(b) >= 30
    assert [st.category for st in a.steps] != [st.category for st in b.steps]


def test_overlays_at_a_larger_screen():
    s = Session(TASK, 9, screen_size=(320, 256))
    t = s.task
    place_nodes(s, [tuple(t.nodes[0])])
    frame = s.render()
    assert (frame == NODE_COLOR).all(-1).any()
    assert math.isclose(t.ann.nodes[0][0], t.nodes[0][0], abs_tol=0.6)


# -- v2: the default annotator decides on what the screen shows ----------------------------------
def test_the_status_line_shows_the_totals_and_the_default_presses_done_when_they_are_reached():
    """``NODES n/N  EDGES m/M``: DONE on the click after the counts read complete (UNDO first
    where a slip just made them complete), with no verify pass before it."""
    for seed in range(20):
        s = Session(TASK, seed)
        t = s.task
        a = RoadAnnotator(s, RoadNetworkConstruction.personas["default"], annotator_rng(seed, "t"))
        for intent in a.script():
            element = s.hit(intent.x, intent.y)[0]
            if element == "DONE":
                assert t.complete()
            elif t.complete():  # complete counts with a wrong annotation in them: UNDO first
                assert element == "UNDO" and t.n_wrong() > 0
            assert intent.phase != "verify"
            s.step(intent.x, intent.y)
        assert s.done and t.score()[1]
        n, m = len(t.nodes), len(t.edges)
        assert t.status()[1].startswith(f"NODES {n}/{n}  EDGES {m}/{m}")


def test_with_the_counts_short_after_the_work_it_verifies_and_presses_done_once_complete():
    """A junction missed on every look during the work (mistakes tripled, this seed): the status
    reads short, it walks the verify pass, finds it, and presses DONE on the complete counts."""
    persona = RoadNetworkConstruction.personas["default"].with_mistakes_scaled(3.0)
    s = Session(TASK, 7)
    t = s.task
    a = RoadAnnotator(s, persona, annotator_rng(7, "x"))
    phases = []
    for intent in a.script():
        if intent.phase == "verify":
            assert not t.complete()
        phases.append(intent.phase)
        s.step(intent.x, intent.y)
    assert "verify" in phases and phases[-1] == "finish" and t.complete() and t.score()[1]


def test_the_default_expert_makes_no_coin_flips():
    """Without its deliberate mistakes (the labeller), the default annotator clicks the same
    elements whatever its decision seed: x first when panning, no peeks, no checks, no late
    notice."""
    persona = RoadNetworkConstruction.personas["default"]
    assert (persona.peek_rate, persona.check_rate, persona.late_notice_rate) == (0, 0, 0)
    assert persona.x_first_rate == 1.0 and persona.done_on_counts
    for seed in range(6):
        runs = []
        for decision in (1, 2):
            s = Session(TASK, seed)
            a = RoadAnnotator.expert(s, persona, annotator_rng(seed, "t"))
            a._decision_seed = (seed, decision)
            runs.append([s.step(i.x, i.y).element for i in a.script()])
        assert runs[0] == runs[1]


def test_a_noticed_slip_is_undone_at_once_and_the_labeller_undoes_too():
    """One correction rule: the default notices a wrong node or edge on the next click (no late
    notice) and presses UNDO, with what it removes drawn; the DAgger labeller in the same state
    names UNDO too."""
    undos = 0
    for seed in range(40):
        s = Session(TASK, seed)
        t = s.task
        persona = RoadNetworkConstruction.personas["default"]
        actor = RoadAnnotator(s, persona, annotator_rng(seed, "demo"))
        labeller = expert(s)
        wrong_since = None
        for intent in actor.script():
            label = labeller.next_intent()
            element = s.hit(intent.x, intent.y)[0]
            if element == "UNDO":
                assert s.hit(label.x, label.y)[0] == "UNDO"
                assert drawn(t, t.latest_annotation()) and wrong_since == 0
                undos += 1
            res = s.step(intent.x, intent.y)
            if res.effect.wrong:
                wrong_since = 0
            elif wrong_since is not None:
                wrong_since = None if not t.n_wrong() else wrong_since + 1
    assert undos >= 10


def test_a_node_left_on_the_maps_border_is_undone_without_panning_against_the_clamp():
    # Seed 10048: 5 random clicks leave a node at x = 0, the latest annotation; the window is
    # clamped at the left border, so no pan brings it further in and the expert must UNDO it.
    from annobc.tasks import contract

    s = Session(TASK, 10048)
    contract.roll_in(s, "random", 5, seed=10048)
    latest = s.task.latest_annotation()
    assert latest is not None and min(x for x, _ in latest) < 1 and s.task.ox == 0
    contract.finish_with_expert(s)
    assert s.done and s.task.score()[1]
    assert s.steps < 200
