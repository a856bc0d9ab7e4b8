"""Campaign records: what each cascade and rollout is doing, for the driver that resumes
it and the pages that show it. They live in the farm's database (`state.db`), so any
master shows any campaign and resumes one whose master died."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..state.db import StateDB
from .campaign import Campaign, Node


class CampaignStore:
    """Campaign records, one row each in the farm's database."""

    def __init__(self, db: StateDB | Path) -> None:
        # a folder: a SQLite database of its own there (tests and tools, no master)
        if not isinstance(db, StateDB):
            Path(db).mkdir(parents=True, exist_ok=True)
            db = StateDB.open("sqlite:///campaigns.sqlite", db)
        self.db = db

    def __eq__(self, other: object) -> bool:  # one database: one store (services' reconfig)
        return isinstance(other, CampaignStore) and other.db is self.db

    __hash__ = None  # type: ignore[assignment]

    def save(self, campaign: Campaign) -> None:
        self.db.campaign_save(asdict(campaign))

    def load(self, campaign_id: str) -> Campaign | None:
        data = self.db.campaign_load(campaign_id)
        return _campaign(data) if data is not None else None

    def all(self) -> list[Campaign]:
        """Newest first."""
        return [_campaign(data) for data in self.db.campaign_all()]

    def interrupted(self, orchestrate_brid: int) -> list[Campaign]:
        """The unfinished campaigns an earlier run of this build request was driving, on
        this master or on one that died."""
        return [_campaign(data) for data in self.db.campaign_all(unfinished_of=orchestrate_brid)]


def _campaign(data: dict[str, Any]) -> Campaign:
    data["nodes"] = {k: Node(**v) for k, v in data["nodes"].items()}
    return Campaign(**data)
