"""``annobc train`` and ``python -m annobc.train`` (what torchrun runs): one argument list, parsed
without importing torch, so ``--help`` works without the [train] extra."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

USAGE = """examples:
  annobc train cpu_demo data.path=data/nine run.name=mine         # a shipped config by name
  annobc train my.yaml optim.max_steps=500                        # or a path
  torchrun --nproc_per_node 8 -m annobc.train gpu_paper data.path=...
"""


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("config", nargs="?",
                    help="a shipped config by name (cpu_demo, gpu_paper) or a YAML file")
    ap.add_argument("overrides", nargs="*", help="section.key=value")
    ap.add_argument("--resume", action="store_true", help="continue the run from its latest checkpoint")
    ap.add_argument("--print-params", action="store_true", help="print the parameter count and exit")
    ap.add_argument("--list-configs", action="store_true", help="print the shipped configs and exit")


def run(args: argparse.Namespace) -> int:
    """Train (or, with --print-params, count parameters). Errors in the config: one line, exit 2."""
    from annobc.train.config import load_config, shipped_configs

    if args.list_configs:
        print("\n".join(shipped_configs()))
        return 0
    if args.config and "=" in args.config and not Path(args.config).exists():
        args.overrides.insert(0, args.config)  # no config, only overrides
        args.config = None
    try:
        cfg = load_config(args.config, args.overrides)
    except ValueError as e:
        print(f"annobc train: error: {e}", file=sys.stderr)
        return 2
    import torch.distributed as dist

    from annobc.models import ClickPolicy, preset
    from annobc.train.train import train

    if args.print_params:
        m = ClickPolicy(preset(cfg.model.preset, window=cfg.data.window, **cfg.model.overrides))
        print(json.dumps({"preset": cfg.model.preset, "params": m.num_params(),
                          "encoder_params": m.num_params(encoder_only=True)}))
        return 0
    try:
        summary = train(cfg, resume=args.resume)
    except (ValueError, FileNotFoundError) as e:
        print(f"annobc train: error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: v for k, v in summary.items() if k != "val"}))
        v = summary.get("val") or {}
        print("val: " + ", ".join(f"{k} {v[k]:.3f}" for k in ("accuracy", "validity", "placement@5",
                                                              "button_accuracy") if k in v))
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="annobc train", epilog=USAGE,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    return run(ap.parse_args(argv))
