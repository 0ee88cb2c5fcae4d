"""Env throughput with rendering, per task: one core, default screen, in every GUI variant.

Replays the virtual annotator's clicks through ``AnnotationEnv.step`` (hit-test, state machine,
frame render, observation copy) and reports the median steps/s over repeats, plus the cost of
``reset`` (scene generation + first frame). Every figure is also given as a multiple of the time
``np.copyto`` takes to copy one screen array into a preallocated one (``frame_copy_us``, measured
before every repeat of the same run): ``x_frame_copy`` is us/step over it, the median over repeats
of the ratio in each repeat, so that a loaded machine moves both sides alike; ``cpu_us_per_step`` and
``cpu_x_frame_copy`` are the same figures in the thread's CPU time, which time lost to other
processes does not inflate. The goal is at most 25x in every variant.

Options add, in the same run:

- ``--browser``: the browser path the published study used: the task served by ``annobc serve``
  (a subprocess), clicked and screenshotted through Playwright in headless Chromium
  (/usr/bin/chromium): steps/s, and the numpy env's steps/s over it;
- ``--split``: each task's us/step split into its own code (its Task methods: view rendering,
  overlays, status text, the state machine) and the shared path (hit-test, session, screen, env,
  observation copy); ``--profile TASK`` prints a cProfile of one task's steps instead;
- ``--vector``: the batched env (``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")``)
  against ``SyncVectorEnv`` of the same envs, aggregate steps/s of ``--num-envs`` envs playing
  annotator episodes (next-step autoreset), on all the cores the process may use.

Writes benchmarks/results/env_throughput.json.

    .venv/bin/python benchmarks/env_throughput.py [--episodes 30] [--repeats 5] [--tasks a,b]
        [--variants all|none|a,b] [--variant-episodes 12] [--variant-repeats 5]
        [--browser] [--vector] [--num-envs 16] [--split]
    .venv/bin/python benchmarks/env_throughput.py --profile neuron_tracking --episodes 10
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, save_results  # noqa: E402

import annobc  # noqa: E402,F401
from annobc.env import AnnotationEnv  # noqa: E402
from annobc.gui import DEFAULT_SCREEN  # noqa: E402
from annobc.tasks import run_annotator, task_ids  # noqa: E402

TARGET = 5000
GOAL_X_FRAME_COPY = 25  # the goal: a step with rendering costs at most 25 frame copies
# DESIGN.md's figure for a browser-driven simulator of the same screen (click + screenshot); used
# for ``vs_browser_simulator`` unless --browser measures the served app in this run.
BROWSER_STEPS_PER_S = 60
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def frame_copy_us(shape=(DEFAULT_SCREEN[1], DEFAULT_SCREEN[0], 3), n: int = 2000,
                  blocks: int = 5, cpu: bool = False) -> float:
    """Median over ``blocks`` of the mean time of ``np.copyto(dst, src)`` for one screen array
    (wall clock; ``cpu``: this thread's CPU time, which other processes on the machine hardly
    move)."""
    clock = time.thread_time if cpu else time.perf_counter
    src = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    dst = np.empty_like(src)
    times = []
    for _ in range(blocks):
        t0 = clock()
        for _ in range(n):
            np.copyto(dst, src)
        times.append((clock() - t0) / n)
    return float(np.median(times)) * 1e6


def _env(task_id: str, variant: str) -> AnnotationEnv:
    # Only a non-default variant is passed, so the default figures also run on code from before
    # variants existed (to compare revisions in one run).
    return AnnotationEnv(task_id) if variant == "default" else AnnotationEnv(task_id, ui_variant=variant)


def _records(task_id: str, episodes: int, variant: str):
    kw = {} if variant == "default" else {"ui_variant": variant}
    return [run_annotator(task_id, seed, **kw) for seed in range(episodes)]


def bench_task(task_id: str, episodes: int, repeats: int, variant: str = "default") -> dict:
    recs = _records(task_id, episodes, variant)
    env = _env(task_id, variant)
    actions = [[np.array(c) for c in r.clicks] for r in recs]
    n_steps = sum(len(a) for a in actions)
    rates, reset_ms, copies, ratios, cpu_us, cpu_ratios = [], [], [], [], [], []
    for _ in range(repeats):
        copy_us, copy_cpu = frame_copy_us(), frame_copy_us(cpu=True)
        step_time = step_cpu = 0.0
        for r, acts in zip(recs, actions):
            t0 = time.perf_counter()
            env.reset(seed=r.seed)
            t1, c1 = time.perf_counter(), time.thread_time()
            for a in acts:
                env.step(a)
            step_time += time.perf_counter() - t1
            step_cpu += time.thread_time() - c1
            reset_ms.append((t1 - t0) * 1e3)
        rates.append(n_steps / step_time)
        copies.append(copy_us)
        ratios.append(1e6 / rates[-1] / copy_us)
        cpu_us.append(1e6 * step_cpu / n_steps)
        cpu_ratios.append(cpu_us[-1] / copy_cpu)
    med = float(np.median(rates))
    mean_len = n_steps / episodes
    return {
        "steps_per_s_median": round(med, 1),
        "steps_per_s_repeats": [round(r, 1) for r in rates],
        "us_per_step": round(1e6 / med, 2),
        "frame_copy_us": round(float(np.median(copies)), 3),
        "x_frame_copy": round(float(np.median(ratios)), 1),
        "x_frame_copy_repeats": [round(r, 1) for r in ratios],
        "cpu_us_per_step": round(float(np.median(cpu_us)), 2),
        "cpu_x_frame_copy": round(float(np.median(cpu_ratios)), 1),
        "reset_ms_median": round(float(np.median(reset_ms)), 3),
        "mean_episode_steps": round(mean_len, 1),
        "reset_share_of_episode": round(float(np.median(reset_ms)) / 1e3 /
                                        (mean_len / med + float(np.median(reset_ms)) / 1e3), 4),
        "steps_measured": n_steps * repeats,
        "meets_target": med >= TARGET,
    }


def bench_variants(task_id: str, variants: list[str], episodes: int, repeats: int) -> dict:
    """Every variant of one task, interleaved: each repeat measures the frame copy, then runs every
    variant once (in a rotated order), so that load on the machine falls on all of them alike."""
    setups = {}
    for v in variants:
        recs = _records(task_id, episodes, v)
        setups[v] = (recs, _env(task_id, v), [[np.array(c) for c in r.clicks] for r in recs])
    us: dict[str, list[float]] = {v: [] for v in variants}
    ratios: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    cpu_ratios: dict[str, list[float]] = {v: [] for v in variants}
    copies = []
    for k in range(repeats):
        copy_us, copy_cpu = frame_copy_us(), frame_copy_us(cpu=True)
        copies.append(copy_us)
        order = variants[k % len(variants):] + variants[:k % len(variants)]
        for v in order:
            recs, env, actions = setups[v]
            n, step_time, step_cpu = 0, 0.0, 0.0
            for r, acts in zip(recs, actions):
                env.reset(seed=r.seed)
                t1, c1 = time.perf_counter(), time.thread_time()
                for a in acts:
                    env.step(a)
                step_time += time.perf_counter() - t1
                step_cpu += time.thread_time() - c1
                n += len(acts)
            us[v].append(1e6 * step_time / n)
            ratios[v].append(us[v][-1] / copy_us)
            cpu[v].append(1e6 * step_cpu / n)
            cpu_ratios[v].append(cpu[v][-1] / copy_cpu)
    return {v: {"us_per_step": round(float(np.median(us[v])), 2),
                "x_frame_copy": round(float(np.median(ratios[v])), 1),
                "x_frame_copy_repeats": [round(x, 1) for x in ratios[v]],
                "cpu_us_per_step": round(float(np.median(cpu[v])), 2),
                "cpu_x_frame_copy": round(float(np.median(cpu_ratios[v])), 1),
                "frame_copy_us": round(float(np.median(copies)), 3),
                "mean_episode_steps": round(sum(map(len, setups[v][2])) / episodes, 1)}
            for v in variants}


# -- where the time goes ------------------------------------------------------------------------------
TASK_METHODS = ("render_view", "draw_overlays", "status", "status_colors", "selected", "press",
                "press_button", "click_canvas", "position", "n_wrong", "score", "view_key")


def split_task(task_id: str, episodes: int, repeats: int = 3) -> dict:
    """us/step of ``env.step`` split into the task's own code (each method of its Task class,
    timed by a wrapper; calls nested in another timed call count once) and the rest: the shared
    path (hit-test, session, screen, env, observation copy). Best of ``repeats``."""
    import functools

    from annobc.tasks import get_task_class

    cls = get_task_class(task_id)
    acc: dict[str, float] = {}
    depth = [0]

    def timed(name, fn):
        @functools.wraps(fn)
        def w(*a, **k):
            if depth[0]:
                return fn(*a, **k)
            depth[0] += 1
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                acc[name] = acc.get(name, 0.0) + time.perf_counter() - t
                depth[0] -= 1
        return w

    saved = {m: cls.__dict__[m] for m in TASK_METHODS if m in cls.__dict__}
    inherited = [m for m in TASK_METHODS if m not in saved and hasattr(cls, m)]
    try:
        for m in list(saved) + inherited:
            setattr(cls, m, timed(m, getattr(cls, m)))
        recs = _records(task_id, episodes, "default")
        env = _env(task_id, "default")
        actions = [[np.array(c) for c in r.clicks] for r in recs]
        n = sum(map(len, actions))
        best = None
        for _ in range(repeats):
            total = 0.0
            parts: dict[str, float] = {}
            for r, acts in zip(recs, actions):
                env.reset(seed=r.seed)
                acc.clear()
                t = time.perf_counter()
                for a in acts:
                    env.step(a)
                total += time.perf_counter() - t
                for k, v in acc.items():
                    parts[k] = parts.get(k, 0.0) + v
            if best is None or total < best[0]:
                best = (total, parts)
    finally:
        for m in inherited:
            delattr(cls, m)
        for m, f in saved.items():
            setattr(cls, m, f)
    total, parts = best
    task_us = 1e6 * sum(parts.values()) / n
    return {"us_per_step": round(1e6 * total / n, 2), "task_code_us": round(task_us, 2),
            "shared_path_us": round(1e6 * total / n - task_us, 2),
            "task_methods_us": {k: round(1e6 * v / n, 2) for k, v in
                                sorted(parts.items(), key=lambda kv: -kv[1])}}


def profile_task(task_id: str, episodes: int, top: int = 25) -> None:
    """cProfile over ``env.step`` of annotator episodes; prints the functions by own time."""
    import cProfile
    import pstats

    recs = _records(task_id, episodes, "default")
    env = _env(task_id, "default")
    pr = cProfile.Profile()
    for r in recs:
        env.reset(seed=r.seed)
        pr.enable()
        for c in r.clicks:
            env.step(np.array(c))
        pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(top)


# -- the browser path --------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _served(task_id: str, scale: int):
    """``annobc serve`` for one task in a subprocess, recording into a temporary folder."""
    out = tempfile.mkdtemp(prefix="annobc-bench-serve-")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "annobc.cli.main", "serve", "--port", str(port),
                             "--out", out, "--tasks", task_id, "--scale", str(scale)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/api/tasks", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"annobc serve did not start: {proc.stderr.read()!r}")
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(out, ignore_errors=True)


def bench_browser(task_id: str, episodes: int, scale: int = 4) -> dict:
    """Annotator episodes clicked into the served app in headless Chromium: per click one mouse
    click, the wait for the new frame to be shown, and a screenshot of the screen element."""
    from playwright.sync_api import sync_playwright

    steps, seconds, shots = 0, 0.0, 0
    profile = tempfile.mkdtemp(prefix="annobc-bench-chromium-")
    with _served(task_id, scale) as base, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1000, "height": 900}, device_scale_factor=1)
        try:
            ctx.set_default_timeout(30_000)
            page = ctx.new_page()
            for _ in range(episodes):
                page.goto(base + "/")
                page.click(f'button[data-task="{task_id}"]')
                page.wait_for_url("**/session/**")
                page.wait_for_selector('main[data-step="0"]', state="attached")
                sid = page.get_attribute("main", "data-sid")
                seed = json.loads(urllib.request.urlopen(f"{base}/api/sessions/{sid}").read())["seed"]
                clicks = run_annotator(task_id, seed).clicks  # the same scene on the same screen
                box = page.locator("#screen").bounding_box()
                clip = {"x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"]}
                t0 = time.perf_counter()
                for k, (x, y) in enumerate(clicks):
                    page.mouse.click(box["x"] + (x + 0.5) * scale, box["y"] + (y + 0.5) * scale)
                    page.wait_for_selector(f'main[data-step="{k + 1}"]', state="attached")
                    shots += len(page.screenshot(clip=clip)) > 0
                seconds += time.perf_counter() - t0
                steps += len(clicks)
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)
    return {"task": task_id, "episodes": episodes, "steps": steps, "screenshots": shots,
            "seconds": round(seconds, 2), "steps_per_s": round(steps / seconds, 1),
            "ms_per_step": round(1e3 * seconds / steps, 2), "display_scale": scale}


# -- the batched env ---------------------------------------------------------------------------------
def _slot_plan(task_id: str, first_seed: int, min_steps: int):
    """Actions for one env slot under next-step autoreset: the annotator's clicks of the episodes
    the slot will play (the seeds its env draws after each end), a dummy click at each reset step."""
    from gymnasium.utils import seeding

    rng, _ = seeding.np_random(first_seed)
    seed, acts = first_seed, []
    while len(acts) < min_steps:
        acts.extend(run_annotator(task_id, seed).clicks)
        acts.append((0, 0))  # the step that resets the slot (its action is ignored)
        seed = int(rng.integers(0, 2**31 - 1))
    return acts


def bench_vector(task_id: str, num_envs: int, steps: int, repeats: int) -> dict:
    import gymnasium as gym

    from annobc.env import env_id

    plans = [_slot_plan(task_id, 1000 + i, steps) for i in range(num_envs)]
    actions = np.array([[p[t] for p in plans] for t in range(steps)], dtype=np.int64)
    eid = env_id(task_id)
    rates: dict[str, list[float]] = {"vector_entry_point": [], "sync": [], "vector_no_copy": []}
    for _ in range(repeats):
        for mode in rates:
            if mode == "vector_no_copy":  # the batch array itself, as SyncVectorEnv(copy=False)
                v = gym.make_vec(eid, num_envs=num_envs, vectorization_mode="vector_entry_point",
                                 copy=False)
            else:
                v = gym.make_vec(eid, num_envs=num_envs, vectorization_mode=mode)
            v.reset(seed=1000)
            t0 = time.perf_counter()
            for a in actions:
                v.step(a)
            rates[mode].append(num_envs * steps / (time.perf_counter() - t0))
            v.close()
    ours, sync, nocopy = (float(np.median(rates[m])) for m in
                          ("vector_entry_point", "sync", "vector_no_copy"))
    return {"num_envs": num_envs, "steps_per_env": steps,
            "vector_steps_per_s": round(ours, 1), "sync_steps_per_s": round(sync, 1),
            "vector_over_sync": round(ours / sync, 2),
            "vector_no_copy_steps_per_s": round(nocopy, 1),
            "vector_no_copy_over_sync": round(nocopy / sync, 2),
            "vector_over_sync_repeats": [round(a / b, 2) for a, b in
                                         zip(rates["vector_entry_point"], rates["sync"])],
            "vector_repeats": [round(r, 1) for r in rates["vector_entry_point"]],
            "sync_repeats": [round(r, 1) for r in rates["sync"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--variants", default="all", help="'all', 'none', or a comma-separated list")
    ap.add_argument("--variant-episodes", type=int, default=12)
    ap.add_argument("--variant-repeats", type=int, default=5)
    ap.add_argument("--browser", action="store_true", help="also time the browser path")
    ap.add_argument("--browser-task", default="colored_dot_tracking")
    ap.add_argument("--browser-episodes", type=int, default=2)
    ap.add_argument("--vector", action="store_true", help="also time the batched env")
    ap.add_argument("--num-envs", type=int, default=16)
    ap.add_argument("--vector-steps", type=int, default=300, help="steps of each vector env")
    ap.add_argument("--vector-tasks", default="all")
    ap.add_argument("--split", action="store_true",
                    help="also split each task's us/step into its own code and the shared path")
    ap.add_argument("--profile", metavar="TASK", help="only print a cProfile of TASK's env.step")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "env_throughput.json"))
    args = ap.parse_args()
    if args.profile:
        profile_task(args.profile, args.episodes)
        return
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if cores:
        os.sched_setaffinity(0, {cores[0]})  # one core for the single-env figures
    tasks = task_ids() if args.tasks == "all" else args.tasks.split(",")
    if args.variants == "none":
        variants: list[str] = []
    else:
        from annobc.gui import resolve_variants

        variants = list(resolve_variants(args.variants))
    copy_before = frame_copy_us()
    results = {}
    for t in tasks:
        results[t] = r = bench_task(t, args.episodes, args.repeats)
        print(f"{t:<32} {r['steps_per_s_median']:>9.0f} steps/s  {r['us_per_step']:>7.1f} us/step  "
              f"{r['x_frame_copy']:>5.1f}x frame copy  reset {r['reset_ms_median']:.2f} ms", flush=True)
        if variants:
            r["variants"] = bench_variants(t, variants, args.variant_episodes, args.variant_repeats)
            worst = max(r["variants"], key=lambda v: r["variants"][v]["x_frame_copy"])
            r["worst_variant"] = {"name": worst, **r["variants"][worst]}
            r["meets_goal_in_every_variant"] = all(
                b["x_frame_copy"] <= GOAL_X_FRAME_COPY for b in r["variants"].values())
            print(f"{'':<32} variants: worst {worst} {r['variants'][worst]['us_per_step']:.1f} us/step "
                  f"{r['variants'][worst]['x_frame_copy']:.1f}x", flush=True)
    if args.split:
        for t in tasks:
            results[t]["split"] = sp = split_task(t, min(args.episodes, 15))
            print(f"{t:<32} task code {sp['task_code_us']:6.1f} us/step, shared path "
                  f"{sp['shared_path_us']:5.1f}: " + ", ".join(
                      f"{k} {v:.1f}" for k, v in list(sp["task_methods_us"].items())[:4]), flush=True)
    copy_after = frame_copy_us()
    out = {
        "benchmark": "env_throughput",
        "what": "AnnotationEnv.step with full rendering, annotator click sequences, one core; "
                "x_frame_copy: us/step over the time of np.copyto of one screen array, measured "
                "before each repeat; cpu_*: the same in this thread's CPU time (robust to other "
                "processes on the machine)",
        "screen": list(DEFAULT_SCREEN),
        "episodes_per_task": args.episodes,
        "repeats": args.repeats,
        "variant_episodes_per_task": args.variant_episodes if variants else None,
        "variant_repeats": args.variant_repeats if variants else None,
        "variants": variants,
        "target_steps_per_s": TARGET,
        "goal_x_frame_copy": GOAL_X_FRAME_COPY,
        "frame_copy_us": round(float(np.median([r["frame_copy_us"] for r in results.values()]
                                               + [copy_before, copy_after])), 3),
        "frame_copy_us_start_end": [round(copy_before, 3), round(copy_after, 3)],
        "machine": describe(),
        "results": results,
    }
    if cores:
        os.sched_setaffinity(0, set(cores))
    if args.vector:
        vtasks = tasks if args.vector_tasks == "all" else args.vector_tasks.split(",")
        out["vector"] = {"cores": len(cores) or os.cpu_count(), "autoreset_mode": "NextStep",
                         "what": "aggregate steps/s of num_envs envs stepped by one process: "
                                 "make_vec(vectorization_mode='vector_entry_point') against "
                                 "'sync' (SyncVectorEnv of AnnotationEnv), both copy=True; vector_no_copy: "
                                 "copy=False (the batch array itself)",
                         "results": {}}
        for t in vtasks:
            v = out["vector"]["results"][t] = bench_vector(t, args.num_envs, args.vector_steps, 5)
            print(f"{t:<32} vector {v['vector_steps_per_s']:>8.0f} steps/s  sync "
                  f"{v['sync_steps_per_s']:>8.0f}  ratio {v['vector_over_sync']:.2f}", flush=True)
    browser_rate, measured = BROWSER_STEPS_PER_S, False
    if args.browser:
        b = bench_browser(args.browser_task, args.browser_episodes)
        env_rate = results[args.browser_task]["steps_per_s_median"] if args.browser_task in results \
            else bench_task(args.browser_task, args.episodes, args.repeats)["steps_per_s_median"]
        b["numpy_env_steps_per_s"] = env_rate
        b["numpy_env_over_browser"] = round(env_rate / b["steps_per_s"], 1)
        out["browser"] = b
        browser_rate, measured = b["steps_per_s"], True
        print(f"browser {b['task']}: {b['steps_per_s']:.1f} steps/s ({b['ms_per_step']:.1f} ms/step); "
              f"the numpy env is {b['numpy_env_over_browser']:.0f}x faster", flush=True)
    out["browser_simulator_steps_per_s"] = browser_rate
    out["browser_simulator_measured"] = measured
    for r in results.values():
        r["vs_browser_simulator"] = round(r["steps_per_s_median"] / browser_rate, 1)
    save_results(args.out, out)


if __name__ == "__main__":
    main()
