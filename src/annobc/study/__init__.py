"""The study's experiments, one command each: ``annobc study NAME --scale micro|paper``.

Above train and eval (which never import each other): a study trains runs, evaluates their
checkpoints, and writes ``report.md`` and ``results.json`` into its folder. ``micro`` runs on a
laptop CPU; ``paper`` is the published configuration (GPUs under torchrun), planned and checked
here, run elsewhere. Killed and rerun, a study continues from its finished units.

    run_study("emergence", "micro", out="runs/study/emergence-micro")
    plan_study("scaling", "paper")   # the runs it would make, their models and estimated cost
    run_study("transfer", "micro", settings={"held_out": ["neuron_tracking"]})
    run_study("real", "micro", settings={"source": "tracks"})   # imported real-format data
    run_study("variants", "micro", settings={"held_out_variants": ["bottom"]})
"""

from __future__ import annotations

import json
from pathlib import Path

from annobc.study.common import PRESETS, SCALES, STUDIES, Study, StudyError, UnitLimit, study_settings

__all__ = ["PRESETS", "SCALES", "STUDIES", "Study", "StudyError", "UnitLimit", "plan_study",
           "run_study", "study_settings"]


def _module(name: str):
    if name == "emergence":
        from annobc.study import emergence as mod
    elif name == "scaling":
        from annobc.study import scaling as mod
    elif name == "transfer":
        from annobc.study import transfer as mod
    elif name == "probes":
        from annobc.study import probes as mod
    elif name == "real":
        from annobc.study import real as mod
    elif name == "variants":
        from annobc.study import variants as mod
    else:
        raise StudyError(f"unknown study {name!r}; known: {', '.join(STUDIES)}")
    return mod


def default_out(name: str, scale: str, settings: dict | None = None) -> Path:
    """runs/study/NAME-SCALE; a study of one data source names it (runs/study/real-neuron-micro)."""
    source = (settings or {}).get("source")
    return Path("runs") / "study" / (f"{name}-{source}-{scale}" if source else f"{name}-{scale}")


def run_study(name: str, scale: str = "micro", out: str | Path | None = None,
              settings: dict | None = None, progress: bool = True,
              max_new_units: int | None = None) -> dict:
    """Run (or continue) study ``name`` at ``scale``; returns its results (also in results.json).
    ``settings``: preset keys to override; ``max_new_units``: stop (UnitLimit) after computing so
    many units, as a kill would."""
    mod = _module(name)
    cfg = study_settings(name, scale, settings)
    study = Study(name, scale, out or default_out(name, scale, cfg), cfg, progress, max_new_units).open()
    results = mod.run(study)
    results["out_dir"] = str(study.out)
    results["units"] = {"computed": study.computed, "reused": study.reused, "trained": study.trained}
    return results


def plan_study(name: str, scale: str = "micro", out: str | Path | None = None,
               settings: dict | None = None) -> dict:
    """The runs study ``name`` would make at ``scale``, without making them: its datasets, each
    training run's config (parsed) and model (built on the meta device: parameter count, estimated
    training FLOPs and GPU-hours), and its evaluation units. A study that reads another study's run
    (``reads``: probes) gets the same for that run, its training not counted. Touches no file."""
    import torch

    from annobc.models import ClickPolicy, preset
    from annobc.study.common import GPU_EFFECTIVE_TFLOPS, gpu_hours
    from annobc.train.config import load_config

    mod = _module(name)
    cfg = study_settings(name, scale, settings)
    study = Study(name, scale, out or default_out(name, scale, cfg), cfg, progress=False)
    plan = mod.plan_runs(study)
    total = 0.0
    per_model: dict = {}  # model and batch -> (cost of one step, parameters): many runs share one
    runs = [(x, True) for x in plan["train"]] + [(x, False) for x in plan.get("reads", [])]
    for r, trained_here in runs:
        tc = load_config(r.get("base_config", cfg.get("base_config")), r["overrides"])
        screen = r.get("screen", cfg.get("screen"))
        pcfg = preset(tc.model.preset, screen_w=screen[0], screen_h=screen[1],
                      window=tc.data.window, **tc.model.overrides)
        batch = tc.optim.batch_size * tc.optim.grad_accum
        preset_name = tc.model.preset if not set(tc.model.overrides) - {"head", "pretrained"} else ""
        workers = max(1, tc.data.workers)
        key = (json.dumps(pcfg.to_dict(), sort_keys=True), batch, preset_name, workers)
        if key not in per_model:
            with torch.device("meta"):
                n_params = ClickPolicy(pcfg).num_params()
            per_model[key] = (gpu_hours(pcfg, batch, 1, preset_name, workers=workers), n_params)
        one_step, n_params = per_model[key]
        est = {**one_step, "gpu_hours": one_step["seconds_per_step"] * tc.optim.max_steps / 3600}
        r.update(params=n_params, steps=tc.optim.max_steps, batch=batch,
                 model_config=pcfg.to_dict(), estimate=est)
        if trained_here:
            total += est["gpu_hours"]
    # Evaluation: teacher-forced windows and closed-loop frames (one frame encoded per click, at
    # most the click cap per episode) at the forward pass's FLOPs; the renderer runs beside it.
    fwd = r["estimate"]["flops_per_step"] / 3 / r["batch"]  # one window, forward
    ev = plan.get("evaluation_load", {})
    flops = ev.get("tf_windows", 0) * fwd + ev.get("closed_loop_frames", 0) * fwd / r["model_config"]["window"]
    plan.update(study=name, scale=scale, out=str(study.out), settings=cfg,
                estimated_training_gpu_hours=total,
                estimated_evaluation_gpu_hours=flops / (GPU_EFFECTIVE_TFLOPS * 1e12) / 3600,
                estimate_note="estimates, not measurements: " + r["estimate"]["basis"]
                + "; evaluation at the last run's model (the largest: an upper bound)")
    return plan
