"""The imitation loop, in resumable stages: generate annotator episodes, train, then DAgger rounds
(the policy plays on train scenes, the annotator labels every state it reaches, train on the grown
dataset), a closed-loop check after every round, and a final evaluation per temperature.

``annobc demo``, ``benchmarks/single_task.py`` and ``benchmarks/nine_task_run.py`` are this loop
with different settings. Every finished stage is written to ``<out>/loop.json``; run again with
the same settings, the loop skips what is finished and resumes a killed training from its last
checkpoint, so one loop can span several sittings. Other settings into the same folder are refused
(one line naming what differs).

Stages (names as in loop.json):

- ``data``: ``episodes_per_task`` annotator episodes per task (800/100/100 train/val/test seeds
  per 1,000);
- ``train``: ``steps`` steps of the config from scratch; with rounds, ``check/0``: closed loop
  on ``check_episodes`` test seeds per task (temperature ``temperatures[0]``);
- ``round/R/dagger``, ``round/R/train``, ``check/R`` for R = 1..``rounds``: ``round_episodes``
  DAgger episodes per task with the latest policy (``round_mode="takeover"``: takeover episodes
  instead, annobc.eval.takeover), ``round_steps`` steps from its weights, the same check;
- ``eval/T`` for each temperature T: ``annobc eval`` of the last policy (teacher-forced on val,
  closed loop on ``eval_episodes`` test seeds, mistake recovery), into ``<out>/eval-T``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from annobc.data import EpisodeStore, Plan, generate, parse_task_params
from annobc.data.store import atomic_write_json
from annobc.eval.closed_loop import closed_loop, closed_loop_metrics
from annobc.eval.evaluate import evaluate
from annobc.eval.takeover import MODES, add_takeover_episodes, describe
from annobc.learning.checkpoint import load_policy
from annobc.train.config import load_config
from annobc.train.train import train

STATE = "loop.json"


@dataclass
class LoopSpec:
    tasks: list[str]
    episodes_per_task: int = 1000
    params: list[str] = field(default_factory=list)  # TASK.NAME=VALUE, as `annobc generate --param`
    config: str = "cpu_demo"
    overrides: list[str] = field(default_factory=list)  # training config section.key=value
    steps: int = 2000
    rounds: int = 0  # DAgger rounds after the first training
    round_episodes: int = 100  # DAgger episodes per task per round
    round_steps: int = 500
    round_warmup: int = 20
    round_mode: str = "dagger"  # or "takeover" (annobc takeover --mode)
    check_episodes: int = 20  # closed-loop test seeds per task after each training
    eval_episodes: int = 100
    temperatures: list[float] = field(default_factory=lambda: [0.4])
    max_clicks: int = 300
    tf_windows: int = 1024
    recovery_seeds: int = 20
    gifs: int = 1
    seed: int = 0
    workers: int = 2  # data generation

    def __post_init__(self):
        # As they read back from loop.json (lists, floats), so that a rerun compares equal.
        self.tasks, self.params, self.overrides = list(self.tasks), list(self.params), list(self.overrides)
        self.temperatures = [float(t) for t in self.temperatures]
        if self.steps <= 0 or self.rounds < 0 or (self.rounds and self.round_steps <= 0):
            raise ValueError(f"steps ({self.steps}) and round_steps ({self.round_steps}) must be "
                             f"positive, rounds ({self.rounds}) at least 0")
        if self.round_mode not in MODES:
            raise ValueError(f"round_mode must be one of {MODES}, got {self.round_mode!r}")
        if not self.temperatures:
            raise ValueError("at least one evaluation temperature is needed")


def _say(msg: str) -> None:
    print(msg, flush=True)


class Loop:
    """One loop's folder and its finished stages."""

    def __init__(self, out: str | Path, spec: LoopSpec):
        self.out, self.spec = Path(out), spec
        self.path = self.out / STATE
        if self.path.exists():
            state = json.loads(self.path.read_text())
            old = state["spec"]
            # What the runs made so far depend on must match; the evaluation settings may change.
            keys = ("tasks", "episodes_per_task", "params", "config", "overrides", "steps",
                    "round_episodes", "round_steps", "round_warmup", "round_mode", "seed")
            diff = [k for k in keys if old.get(k) != asdict(spec)[k]]
            if diff:
                raise ValueError(f"{self.path} was made with other settings ({', '.join(diff)}: "
                                 f"{', '.join(repr(old.get(k)) for k in diff)}); use another --out")
            self.state = state
            self.state["spec"] = asdict(spec)
        else:
            self.state = {"spec": asdict(spec), "stages": {}}

    @property
    def stages(self) -> dict:
        return self.state["stages"]

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.path, self.state)

    def stage(self, name: str, fn, book: str = "stages"):
        """Run ``fn()`` unless stage ``name`` is finished; record its result (JSON-able) and time.
        ``book="parts"``: a part of a stage (kept apart, so that stage times add up)."""
        done = self.state.setdefault(book, {})
        if name in done:
            return done[name]["result"]
        t0 = time.perf_counter()
        result = fn()
        done[name] = {"result": result, "minutes": round((time.perf_counter() - t0) / 60, 2)}
        self.save()
        return result

    # -- the parts ------------------------------------------------------------------------------------
    @property
    def data(self) -> Path:
        return self.out / "data"

    def run_dir(self, r: int) -> Path:
        return self.out / ("train" if r == 0 else f"round{r}")

    def _generate(self) -> dict:
        s = self.spec
        _say(f"generating {s.episodes_per_task} annotator episodes per task for {len(s.tasks)} "
             f"tasks -> {self.data}")
        card = generate(self.data, Plan(tasks=s.tasks, episodes_per_task=s.episodes_per_task,
                                        seed=s.seed, params=parse_task_params(s.params)),
                        workers=s.workers)
        return {"episodes": card["episodes"], "steps": card["steps"]}

    def _train(self, r: int) -> dict:
        s = self.spec
        run = self.run_dir(r)
        over = [f"data.path={self.data}", f"run.out_dir={self.out}", f"run.name={run.name}",
                f"run.seed={s.seed}", "optim.max_minutes=0", *s.overrides]
        if r == 0:
            over.append(f"optim.max_steps={s.steps}")
        else:
            over += [f"model.init_from={self.run_dir(r - 1)}", f"optim.max_steps={s.round_steps}",
                     f"optim.warmup_steps={s.round_warmup}"]
        cfg = load_config(s.config, over)
        # A training killed part-way continues from its last checkpoint (exact resume).
        resume = (run / "checkpoints").exists() and any((run / "checkpoints").iterdir())
        _say(f"training {cfg.model.preset} for {cfg.optim.max_steps} steps -> {run}"
             + (" (resuming)" if resume else ""))
        summary = train(cfg, resume=resume)
        return {k: summary[k] for k in ("step", "minutes", "params", "val")}

    def _dagger(self, r: int) -> dict:
        s = self.spec
        model, _ = load_policy(str(self.run_dir(r - 1)))
        out = {}
        for t in s.tasks:
            key = f"round/{r}/dagger/{t}"  # per task, so a kill loses at most one task's episodes
            out[t] = self.stage(key, lambda t=t: add_takeover_episodes(
                model, self.data, t, s.round_episodes, s.temperatures[0], seed=s.seed + r,
                name=f"round{r}", mode=s.round_mode), book="parts")
            _say(f"  {describe(out[t])}")
        return out

    def _check(self, r: int) -> dict:
        """Closed-loop success per task of the policy after round ``r`` (0: the first training)."""
        s = self.spec
        model, _ = load_policy(str(self.run_dir(r)))
        store = EpisodeStore(self.data)
        card = store.card
        start = card["seed_ranges"]["test"][0]
        seeds = list(range(start, start + s.check_episodes))
        params = {t: v["params"] for t, v in card["tasks"].items()}
        rollouts = closed_loop(model, s.tasks, seeds, s.temperatures[0], s.max_clicks,
                               tuple(card["screen"]), card.get("theme"), params=params,
                               name=self.run_dir(r).name)
        res = {t: closed_loop_metrics([x.record for x in rollouts[t]]) for t in s.tasks}
        _say(f"  closed loop after round {r} ({s.check_episodes} seeds): " + ", ".join(
            f"{t} {m['success_rate']:.0%}" for t, m in res.items()))
        return res

    def _evaluate(self, temperature: float) -> dict:
        s = self.spec
        res = evaluate(str(self.run_dir(s.rounds)), s.tasks, s.eval_episodes, temperature,
                       s.max_clicks, out=str(self.out / f"eval-T{temperature:g}"),
                       gifs_per_task=s.gifs, tf_windows=s.tf_windows,
                       recovery_seeds=s.recovery_seeds)
        return {"out_dir": res["out_dir"], "closed_loop": res["closed_loop"],
                "teacher_forced": {k: v for k, v in res["teacher_forced"].items() if k != "by_variant"},
                "mistake_recovery": res["mistake_recovery"]}

    # -- the whole loop -------------------------------------------------------------------------------
    def run(self) -> dict:
        s = self.spec
        t0 = time.perf_counter()
        # Without rounds the final evaluation is the only closed loop needed.
        n = 2 + (3 * s.rounds + 1 if s.rounds else 0) + len(s.temperatures)
        k = iter(range(1, n + 1))
        _say(f"[{next(k)}/{n}] data")
        self.stage("data", self._generate)
        _say(f"[{next(k)}/{n}] training")
        self.stage("train", lambda: self._train(0))
        if s.rounds:
            _say(f"[{next(k)}/{n}] closed-loop check before the rounds")
            self.stage("check/0", lambda: self._check(0))
        for r in range(1, s.rounds + 1):
            _say(f"[{next(k)}/{n}] round {r}: {s.round_episodes} {s.round_mode} episodes per task")
            self.stage(f"round/{r}/dagger", lambda r=r: self._dagger(r))
            _say(f"[{next(k)}/{n}] round {r}: training {s.round_steps} steps")
            self.stage(f"round/{r}/train", lambda r=r: self._train(r))
            _say(f"[{next(k)}/{n}] closed-loop check after round {r}")
            self.stage(f"check/{r}", lambda r=r: self._check(r))
        for temp in s.temperatures:
            _say(f"[{next(k)}/{n}] evaluating at temperature {temp:g} on {s.eval_episodes} test "
                 f"seeds per task")
            self.stage(f"eval/{temp:g}", lambda temp=temp: self._evaluate(temp))
        self.state["minutes_this_sitting"] = round((time.perf_counter() - t0) / 60, 2)
        self.state["minutes_total"] = stage_minutes(self.state)
        self.save()
        return self.state


def stage_minutes(state: dict, kind: str = "") -> float:
    """Minutes of the finished stages (``kind="train"``: the trainings only)."""
    return round(sum(v["minutes"] for k, v in state["stages"].items() if k.endswith(kind)), 2)


def success_by_round(state: dict) -> dict[str, list[float]]:
    """task -> closed-loop success after each round (the check stages), in round order."""
    checks = sorted((int(k.split("/")[1]), v["result"]) for k, v in state["stages"].items()
                    if k.startswith("check/"))
    tasks = state["spec"]["tasks"]
    return {t: [res[t]["success_rate"] for _, res in checks] for t in tasks}


def task_figures(state: dict, task: str, temperature: float) -> dict:
    """One task's figures from a finished loop: the final evaluation at ``temperature`` (closed
    loop, teacher-forced, mistake recovery), success after each round, and the time spent."""
    final = state["stages"][f"eval/{temperature:g}"]["result"]
    tf = final["teacher_forced"]["by_task"][task]
    return {
        "closed_loop": final["closed_loop"][task],
        "teacher_forced": {k: tf.get(k) for k in (
            "n", "accuracy", "validity", "placement@2", "placement@5", "button_accuracy",
            "decision_accuracy", "accuracy_by_category", "count_by_category", "accuracy_by_button")},
        "mistake_recovery": final["mistake_recovery"][task],
        "success_by_round": success_by_round(state)[task] if state["spec"]["rounds"] else None,
        "train_minutes": stage_minutes(state, "train"),
        "minutes": stage_minutes(state),
    }


def run_loop(out: str | Path, spec: LoopSpec) -> dict:
    return Loop(out, spec).run()

