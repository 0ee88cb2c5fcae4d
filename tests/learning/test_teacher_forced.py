import numpy as np

from annobc.learning.teacher_forced import score_predictions, summarise
from annobc.gui import Layout
from annobc.tasks import get_task_class
from annobc.tasks.base import CATEGORIES

TASK = "colored_dot_tracking"


def test_hits_by_element_and_distance():
    L = Layout(160, 128, [b.label for b in get_task_class(TASK).buttons])
    z = L.buttons["+Z"]
    undo = L.buttons["UNDO"]
    c = L.canvas
    target = np.array([[z.x0 + 2, z.y0 + 2], [c.x0 + 50, c.y0 + 50], [c.x0 + 50, c.y0 + 50],
                       [undo.x0 + 3, undo.y0 + 3]])
    pred = np.array([[z.x1 - 2, z.y1 - 2], [c.x0 + 53, c.y0 + 54], [c.x0 + 58, c.y0 + 50], [0, 127]])
    cat = np.array([CATEGORIES.index(k) for k in ("navigate", "place", "place", "undo")])
    flags = score_predictions([TASK] * 4, pred, target, cat, (160, 128))
    assert flags["hit"].tolist() == [True, True, False, False]
    assert flags["valid_action"].tolist() == [True, True, True, False]
    m = summarise({**flags, "category": cat})
    assert m["placement@5"] == 0.5 and m["placement@2"] == 0.0
    assert m["button_accuracy"] == 0.5 and m["validity"] == 0.75
    assert m["accuracy_by_category"] == {"navigate": 1.0, "place": 0.5, "undo": 0.0}


def test_hits_are_tested_in_the_windows_variant():
    # In `left` the canvas sits where the default layout has its buttons: a placement 1 px off a
    # target on the right of that canvas is a hit there, and would be a miss in the default layout.
    labels = [b.label for b in get_task_class(TASK).buttons]
    c = Layout(160, 128, labels, "left").canvas
    assert c.x1 > Layout(160, 128, labels).canvas.x1
    target = np.array([[c.x1 - 3, c.y0 + 20]])
    pred = target + [[1, 0]]
    cat = np.array([CATEGORIES.index("place")])
    left = score_predictions([TASK], pred, target, cat, (160, 128), ["left"])
    default = score_predictions([TASK], pred, target, cat, (160, 128))
    assert left["hit"].tolist() == [True] and default["hit"].tolist() == [False]
    # a click left of the mirrored canvas hits a button in `left`, and the canvas by default
    z = Layout(160, 128, labels, "left").buttons["+Z"]
    assert z.x1 < c.x0
    point = np.array([[z.x0 + 2, z.y0 + 2]])
    nav = np.array([CATEGORIES.index("navigate")])
    assert score_predictions([TASK], point + [[1, 1]], point, nav, (160, 128), ["left"])["hit"].all()
    assert Layout(160, 128, labels).hit_map[point[0, 1], point[0, 0]] == 0


def test_button_accuracy_names_the_decision_that_goes_wrong():
    from annobc.learning.teacher_forced import button_accuracy

    L = Layout(160, 128, [b.label for b in get_task_class(TASK).buttons])
    z, undo, done = (L.buttons[k] for k in ("+Z", "UNDO", "DONE"))
    c = L.canvas
    target = np.array([[done.x0 + 2, done.y0 + 2]] * 3 + [[undo.x0 + 2, undo.y0 + 2], [c.x0 + 9, c.y0 + 9]])
    # DONE once right, once predicted as +Z, once on the canvas; UNDO right; a placement (not a button)
    pred = np.array([[done.x0 + 3, done.y0 + 3], [z.x0 + 2, z.y0 + 2], [c.x0 + 30, c.y0 + 30],
                     [undo.x0 + 1, undo.y0 + 1], [c.x0 + 9, c.y0 + 9]])
    cat = np.array([CATEGORIES.index(k) for k in ("done", "done", "done", "undo", "place")])
    flags = score_predictions([TASK] * 5, pred, target, cat, (160, 128))
    acc = button_accuracy(TASK, {**flags, "category": cat})
    assert set(acc) == {"DONE", "UNDO"}
    assert acc["DONE"]["n"] == 3 and abs(acc["DONE"]["accuracy"] - 1 / 3) < 1e-9
    assert acc["DONE"]["predicted_instead"] == {"+Z": 1, "canvas": 1}
    assert acc["UNDO"] == {"n": 1, "accuracy": 1.0, "predicted_instead": {}}
