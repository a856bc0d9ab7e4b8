"""Stage 1, the files: packages.yaml, the worker files and rollouts.yaml, read safely
(safeyaml) and validated into frozen objects (packages, workers, rollouts) with every
problem named by file, line and field; the platform table; which worker serves which
target (matching); the ABI pin rules; the dependency graph."""
