"""farmtool: the worker side of wheelfarm (standard library only, Python 3.10+).

The master ships it with every build as one file, `farmtool.pyz` (a deterministic
zipapp of this package, whose sha256 the build record names), so master and worker
never drift and a volunteer needs nothing of the farm's but `buildbot-worker`, the
farm's tools (uv, auditwheel, ...) and their Pythons. The steps run it:

    fetch      download the sdist and verify its sha256            (sdist.py)
    build      the wheel, the backend sandboxed and offline        (build.py)
    repair     make the wheel portable                             (repair.py)
    check      policy, abi3 rules, contents                         (check.py)
    test       import every module, run the tests, sandboxed       (testing.py)
    toolchain  the toolchain as one JSON object                    (toolchain.py)

The trust boundary (docs/volunteers/isolation.md) is kept in one place each: untrusted code
runs only as an `isolation.Phase` (isolation/: bubblewrap, containers, user-mode
networking, limits); environments are made by the trusted side alone (venvs.py);
requirement strings are parsed before anything uses them (requirements.py); files
untrusted code could have written are read only through files.py; what the master
believes comes only from the facts file (facts.py).
"""
