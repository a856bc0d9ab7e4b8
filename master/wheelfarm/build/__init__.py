"""Stage 3, one build: the factory every platform's builder runs (resolve, fetch,
build, repair, check, test, upload, publish), its worker side (worker_side/farmtool.py),
the schedulers that request builds, and which worker may take which."""
