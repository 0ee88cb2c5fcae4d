"""Training: config, checkpoints, the (torchrun-ready) training loop."""
