"""End to end in real headless Chromium (Debian's package, driven by Playwright; nothing downloaded):
open the task list, start a colored_dot_tracking session, click on the page, press DONE, and check
that the recorded episode replays to exactly the frames the browser showed."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from annobc.data import EpisodeStore
from annobc.tasks import Session, frame_hash, replay
from annobc.web.app import create_app

from .browser import chromium, chromium_available, serve_in_thread

TASK = "colored_dot_tracking"
SCALE = 4

pytestmark = pytest.mark.skipif(not chromium_available(),
                                reason="/usr/bin/chromium is absent (scripts/setup.sh installs it)")


def decode_src(src: str) -> np.ndarray:
    assert src.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))


def test_clicks_in_the_browser_are_recorded_and_replay_to_the_frames_shown(tmp_path):
    from playwright.sync_api import sync_playwright  # annobc[web]: a missing package fails here

    out = tmp_path / "human"
    app = create_app(out, [TASK, "neuron_tracking"], scale=SCALE)
    errors: list[str] = []
    with serve_in_thread(app) as base, sync_playwright() as pw, chromium(pw) as ctx:
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(base + "/")
        assert "brightest" in page.inner_text("ul.tasks")
        page.fill("#annotator", "e2e")
        page.click(f'button[data-task="{TASK}"]')
        page.wait_for_url("**/session/**")
        page.wait_for_selector('main[data-step="0"]', state="attached")
        sid = page.get_attribute("main", "data-sid")
        seed = app.state.web.sessions[sid].seed
        ref = Session(TASK, seed)
        lay = ref.layout

        img = page.locator("#screen")
        shown = [decode_src(img.get_attribute("src"))]
        assert np.array_equal(shown[0], ref.render())  # the model's frame, pixel for pixel
        # Displayed crisply: every screen pixel is a SCALE x SCALE block of its own colour.
        box = img.bounding_box()
        clip = {"x": round(box["x"]), "y": round(box["y"]), "width": lay.width * SCALE,
                "height": lay.height * SCALE}
        shot = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=clip))).convert("RGB"))
        assert shot.shape == (lay.height * SCALE, lay.width * SCALE, 3)
        assert np.array_equal(shot, np.repeat(np.repeat(shown[0], SCALE, 0), SCALE, 1))

        # A few clicks: to the brightest slice of the shallowest requested dot, mark it, check in
        # MIP, DONE. Each is clicked at a different spot inside its scaled-up pixel.
        dot = min(ref.task.targets, key=lambda d: d.peak)
        c = lambda r: ((r.x0 + r.x1) // 2, (r.y0 + r.y1) // 2)  # noqa: E731
        plan = ([c(lay.buttons["+Z"])] * dot.peak + [ref.mapper.to_screen(dot.x, dot.y)]
                + [c(lay.buttons["MIP"])] * 2 + [c(lay.buttons["DONE"])])
        box = img.bounding_box()
        for k, (x, y) in enumerate(plan):
            dx, dy = (1.0, 3.0, 1.5, 2.5)[k % 4], (3.0, 1.0, 2.0, 1.5)[k % 4]
            page.mouse.click(box["x"] + x * SCALE + dx, box["y"] + y * SCALE + dy)
            page.wait_for_selector(f'main[data-step="{k + 1}"]', state="attached")
            shown.append(decode_src(img.get_attribute("src")))
        page.wait_for_selector('main[data-finished="true"]', state="attached")
        status = page.inner_text("#status")
        assert "Finished (DONE)" in status
        eid = app.state.web.sessions[sid].episode_id
        assert eid in status

        # The replay page plays the recorded episode, marking each click.
        page.goto(f"{base}/replay/out/{eid}")
        page.wait_for_selector('main[data-frame="0"]', state="attached")
        page.click("#next")
        page.wait_for_selector('main[data-frame="1"]', state="attached")
        mk = page.locator("#marker").bounding_box()
        box = page.locator("#screen").bounding_box()
        x1, y1 = plan[1]
        assert abs(mk["x"] + mk["width"] / 2 - (box["x"] + x1 * SCALE + SCALE / 2)) <= 1
        assert abs(mk["y"] + mk["height"] / 2 - (box["y"] + y1 * SCALE + SCALE / 2)) <= 1
        assert f"click 2 at ({x1}, {y1}) on +Z [navigate]" in page.inner_text("#status")
        served = page.evaluate("""async () => {
            const r = await fetch(document.getElementById('screen').src);
            return Array.from(new Uint8Array(await r.arrayBuffer())); }""")
        replay_frame1 = np.asarray(Image.open(io.BytesIO(bytes(served))).convert("RGB"))
    assert not errors, errors

    rec = EpisodeStore(out).record(eid)
    assert rec.persona == "human:e2e" and rec.done and rec.clicks == plan
    assert rec.score == 2 / (1 + len(ref.task.targets))  # one right marker of all the dots (F1)
    ts = [s.timestamp_ms for s in rec.steps]
    assert all(t is not None and t >= 0 for t in ts) and ts == sorted(ts)
    frames = list(replay(rec))
    assert [frame_hash(f) for f in frames] == [frame_hash(f) for f in shown]
    assert np.array_equal(replay_frame1, frames[1])
