"""Campaign records: what each cascade and rollout is doing, for the driver that resumes
it and the pages that show it."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from .campaign import Campaign, Node


class CampaignStore:
    """Campaign records, one JSON file each, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def save(self, campaign: Campaign) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = json.dumps(asdict(campaign), indent=1).encode()
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, self.root / f"{campaign.id}.json")

    def load(self, campaign_id: str) -> Campaign | None:
        path = self.root / f"{campaign_id}.json"
        if "/" in campaign_id or not path.is_file():
            return None
        data = json.loads(path.read_text())
        data["nodes"] = {k: Node(**v) for k, v in data["nodes"].items()}
        return Campaign(**data)

    def all(self) -> list[Campaign]:
        if not self.root.is_dir():
            return []
        found = (self.load(p.stem) for p in sorted(self.root.glob("*.json")))
        return sorted((c for c in found if c), key=lambda c: -c.created_at)

    def interrupted(self, orchestrate_brid: int) -> list[Campaign]:
        """The unfinished campaigns an earlier run of this build request was driving."""
        return [
            c for c in self.all() if c.orchestrated_by == orchestrate_brid and not c.finished_at
        ]
