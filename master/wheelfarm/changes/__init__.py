"""Stage 5, what starts builds from outside: new releases on PyPI, and the registry's
git repository (its pushes and pull requests)."""
