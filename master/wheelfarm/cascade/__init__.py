"""Stage 4, many builds in dependency order: campaigns (cascades after an ABI change,
rollouts of a toolchain or Python), the orchestrating build that drives them, their
records, and their recovery after a master's end."""
