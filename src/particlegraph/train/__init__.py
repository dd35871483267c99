"""Training: the shared loop, checkpoints, resume, DDP, losses."""
