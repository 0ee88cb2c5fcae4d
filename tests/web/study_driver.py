"""A scripted stand-in for a person, clicking through `annobc serve` in headless Chromium.

NOT a person, and not a model of one fitted to data: it is a bot that plays colored_dot_tracking
through the real page (real mouse clicks on the scaled-up screen, one click per frame shown). It
does not read the dots off the pixels: it takes the scene's ground truth from a ``Session`` built
with the session's seed (the seed is in the session's API state). Its habits and its delays before
each click are numbers chosen here by hand (see ``Habits``), so the reaction times it produces
measure those choices plus the page's latency, nothing about people. It exists to exercise the
whole path (page -> server -> recording -> dataset -> ``annobc compare``) with plausible data.

    annobc serve --out /tmp/study/human --tasks colored_dot_tracking --port 8765 &
    .venv/bin/python -m tests.web.study_driver --url http://127.0.0.1:8765 --sessions 3 --name bot
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from urllib.request import urlopen

import numpy as np

from annobc.tasks import Session

from .browser import chromium

TASK = "colored_dot_tracking"


@dataclass
class Habits:
    # Median delay (ms) before a click, by what the click does; lognormal spread sigma.
    delay_ms = {"survey": 2200, "navigate": 330, "inspect": 450, "place": 1050, "verify": 800,
                "undo": 950, "done": 1600}
    sigma: float = 0.35
    overshoot: float = 0.45  # goes 1-2 slices past the brightest and comes back
    place_sd: float = 0.8  # placement scatter, screen pixels
    notice: float = 0.85  # notices a marker that missed its dot (> 2 px off) and redoes it
    slip: float = 0.04  # marks one slice before the brightest, notices on the next slice
    mip_check: float = 0.1  # toggles MIP after a placement to check
    speed: float = 1.0  # multiplies every delay (e.g. 0.05 for a quick smoke run)


class Player:
    def __init__(self, page, base: str, habits: Habits, rng: np.random.Generator):
        self.page, self.base, self.h, self.rng = page, base, habits, rng

    def start(self, name: str) -> None:
        p = self.page
        p.goto(self.base + "/")
        p.fill("#annotator", name)
        p.click(f'button[data-task="{TASK}"]')
        p.wait_for_url("**/session/**")
        p.wait_for_selector('main[data-step="0"]', state="attached")
        self.sid = p.get_attribute("main", "data-sid")
        with urlopen(f"{self.base}/api/sessions/{self.sid}") as r:
            state = json.load(r)
        self.scale = state["scale"]
        self.truth = Session(TASK, state["seed"])  # ground truth, not pixels (see the module doc)
        self.task = self.truth.task
        self.lay = self.truth.layout
        self.step, self.z, self.placed = 0, 0, 0
        self.screenshot: str | None = None

    def wait(self, kind: str) -> None:
        ms = self.h.delay_ms[kind] * float(np.exp(self.rng.normal(0.0, self.h.sigma))) * self.h.speed
        self.page.wait_for_timeout(ms)

    def click(self, x: int, y: int, kind: str) -> None:
        self.wait(kind)
        box = self.page.locator("#screen").bounding_box()
        s = self.scale
        self.page.mouse.click(box["x"] + x * s + self.rng.uniform(1, s - 1),
                              box["y"] + y * s + self.rng.uniform(1, s - 1))
        self.step += 1
        self.page.wait_for_selector(f'main[data-step="{self.step}"]', state="attached")

    def press(self, label: str, kind: str) -> None:
        r = self.lay.buttons[label]
        self.click(int(self.rng.integers(r.x0 + 2, r.x1 - 2)), int(self.rng.integers(r.y0 + 2, r.y1 - 2)),
                   kind)
        if label == "+Z":
            self.z = min(self.z + 1, self.task.n_slices - 1)
        elif label == "-Z":
            self.z = max(self.z - 1, 0)

    def goto(self, z: int, kind: str = "navigate") -> None:
        while self.z != z:
            self.press("+Z" if z > self.z else "-Z", kind)

    def place(self, dot, sd: float) -> bool:
        """Clicks near the dot; returns whether the marker landed within 2 px (a match)."""
        u = dot.x + self.rng.normal(0, sd)
        v = dot.y + self.rng.normal(0, sd)
        x, y = self.truth.mapper.to_screen(u, v)
        self.click(x, y, "place")
        self.placed += 1
        if self.screenshot and self.placed == 3:
            self.page.screenshot(path=self.screenshot, full_page=True)
        du, dv = self.truth.mapper.to_data(x, y)
        return bool(np.hypot(du - dot.x, dv - dot.y) <= 2.0)

    def play(self) -> None:
        h = self.h
        self.press("MIP", "survey")
        self.press("MIP", "verify")
        dots = sorted(self.task.targets, key=lambda d: (d.peak, d.y))
        for dot in dots:
            if self.rng.random() < h.slip and dot.peak > self.z:
                self.goto(dot.peak - 1)
                self.place(dot, h.place_sd)
                self.press("+Z", "inspect")  # the next slice is brighter: that was early
                self.press("UNDO", "undo")
                self.place(dot, h.place_sd / 2)
                continue
            self.goto(dot.peak)
            if self.rng.random() < h.overshoot:
                past = int(np.clip(dot.peak + (1 if self.rng.random() < 0.7 else 2), 0,
                                   self.task.n_slices - 1))
                self.goto(past, "inspect")
                self.goto(dot.peak, "inspect")
            hit = self.place(dot, h.place_sd)
            if not hit and self.rng.random() < h.notice:
                self.press("UNDO", "undo")
                self.place(dot, h.place_sd / 2)
            if self.rng.random() < h.mip_check:
                self.press("MIP", "verify")
                self.press("MIP", "verify")
        self.press("MIP", "verify")
        self.press("MIP", "verify")
        self.press("DONE", "done")
        self.page.wait_for_selector('main[data-finished="true"]', state="attached")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8765")
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--name", default="bot")
    ap.add_argument("--seed", type=int, default=0, help="the bot's own randomness")
    ap.add_argument("--speed", type=float, default=1.0, help="delay multiplier")
    ap.add_argument("--screenshot", default=None, help="save a PNG of the page mid-session here")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    habits = Habits(speed=args.speed)
    rng = np.random.default_rng(args.seed)
    with sync_playwright() as pw, chromium(pw, width=900, height=820) as ctx:
        page = ctx.new_page()
        for i in range(args.sessions):
            t0 = time.monotonic()
            player = Player(page, args.url.rstrip("/"), habits, rng)
            player.start(args.name)
            player.screenshot = args.screenshot if i == 0 else None  # after the third marker
            player.play()
            print(f"session {i + 1}: {player.step} clicks in {time.monotonic() - t0:.0f} s -> "
                  f"{page.inner_text('#status')}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
