"""Training runs: the config schema and its composition, the loop, checkpoints, evaluation,
tracking (metrics.jsonl and wandb) and sweeps."""
