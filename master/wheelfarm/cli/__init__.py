"""Stage 8, the `wheelfarm` command: check, plan, worker passwords, reproducible,
and the local farm (up, down)."""
