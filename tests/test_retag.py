"""A rebuild with other bytes is published under the next build number, never over a file."""

from __future__ import annotations

import pytest

from wheelfarm.index.store import Index, IndexConflict
from wheelfarm.pipeline.publish import retag
from wheelmaker import make_wheel


def test_rebuild_with_other_bytes_gets_the_next_build_number(tmp_path):
    index = Index(tmp_path / "index")
    index.add(make_wheel(tmp_path / "a", "demo", "1.0", payload="first"), {})
    rebuilt = make_wheel(tmp_path / "b", "demo", "1.0", payload="second")
    with pytest.raises(IndexConflict):
        index.add(rebuilt, {})

    tagged = retag(rebuilt, index)
    assert tagged.name == "demo-1.0-1-py3-none-any.whl"
    assert str(index.add(tagged, {})) == "added"

    again = retag(make_wheel(tmp_path / "c", "demo", "1.0", payload="third"), index)
    assert again.name == "demo-1.0-2-py3-none-any.whl"
    assert str(index.add(again, {})) == "added"
    assert sorted(index.wheel_names("demo")) == [
        "demo-1.0-1-py3-none-any.whl",
        "demo-1.0-2-py3-none-any.whl",
        "demo-1.0-py3-none-any.whl",
    ]
