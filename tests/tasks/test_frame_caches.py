"""A session's frame, drawn incrementally with every cache the tasks keep (view images, overlay
pixel lists, canvas keys), is the frame drawn from scratch, on every task."""

import numpy as np
import pytest

from annobc.tasks import Session, get_task_class, task_ids


def _from_scratch(s: Session) -> np.ndarray:
    """The current frame, drawn whole: chrome, the view image rendered anew, overlays, status."""
    task = s.task
    view = task.render_view(task.view_key())
    canvas = view if s.mapper.identity else s.mapper.to_canvas_image(view)
    frame = s.screen.render(canvas, task.buttons_lit(), task.status(), None, task.status_colors())
    task.draw_overlays(s.screen.canvas_view(frame), s.mapper)
    return frame


@pytest.mark.parametrize("variant", ["default", "large-font"])
@pytest.mark.parametrize("task_id", task_ids())
def test_incremental_frames_equal_frames_drawn_from_scratch(task_id, variant):
    rng = np.random.default_rng(5)
    s = Session(task_id, 3, ui_variant=variant)
    labels = [b.label for b in get_task_class(task_id).buttons if b.label != "DONE"]
    c = s.layout.canvas
    for k in range(150):
        if rng.random() < 0.4:
            s.step(int(rng.integers(c.x0, c.x1)), int(rng.integers(c.y0, c.y1)))
        else:  # buttons twice in a row too: a click that leaves the canvas as it was
            s.click_button(labels[rng.integers(len(labels))])
        got = s.frame()
        assert np.array_equal(got, _from_scratch(s)), k
