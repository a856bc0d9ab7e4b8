"""Stage 3, one build: the factory every platform's builder runs (resolve, fetch,
build, repair, check, test, upload, publish), the worker side it ships
(`farmtool.pyz`, made from `master/farmtool/` by workerapp), the uploads, and the
schedulers that request builds."""
