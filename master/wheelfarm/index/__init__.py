"""Stage 2, the index: wheels on disk, append-only (store), rewritten with their ABI
pins (pinning), served as a PEP 503/691 simple index (serve), and the verify builds'
results kept beside it (verify)."""
