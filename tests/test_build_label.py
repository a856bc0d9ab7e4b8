"""What a wheel build shows in Buildbot's lists: its target (no master)."""

from __future__ import annotations

from wheelfarm.pipeline.steps import target_label


class FakeBuild:
    def __init__(self, **props) -> None:
        self.props = props

    def getProperty(self, name, default=None):
        return self.props.get(name, default)


def test_a_wheel_build_names_its_target_in_its_summary():
    build = FakeBuild(package="six", version="1.16.0", python="3.11", platform="linux-x86_64")
    assert target_label(build) == ["six 1.16.0 py3.11:"]
    # resolve failed: no version yet, the requested range instead, or nothing
    assert target_label(
        FakeBuild(package="six", version_spec="<2", python="3.11", platform="x")
    ) == ["six <2 py3.11:"]
    assert target_label(FakeBuild(package="six", python="3.11", platform="x")) == ["six py3.11:"]
    # not a wheel build (the orchestrator, the janitor): its own summary only
    assert target_label(FakeBuild()) == []
