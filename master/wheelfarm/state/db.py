"""The farm's own tables, in the database Buildbot uses (`db_url`: SQLite by default,
PostgreSQL for a cluster), so that every master sees every campaign and status row.

Why tables of our own rather than Buildbot's state API (`master.db.state`, one JSON value
per object and name): status rows are half a million a year, read by package and tailed
by every master (the rows since the last one it saw); campaigns are found by the build
request driving them. A JSON value rewritten whole per change does neither; rows with
indexes do. The store is also used from threads and pages outside Buildbot's db pool,
so it has its own engine, made by Buildbot's own `create_engine` (the same URL
handling: a relative SQLite path is the basedir's, WAL mode).

Connections drop: a database restart, a failover, a pooler or an idle timeout ends them
while they wait in the pool. Every engine on the farm's database, Buildbot's too
(`engine_options`), checks a connection before use (SQLAlchemy's `pool_pre_ping`) and
replaces a dead one; a call that still meets an `OperationalError` (a connection lost
mid-call, a server restarting) is tried again for up to `RETRY_FOR` seconds, which is
safe because every call here is idempotent (a record written whole, rows inserted
unless there, rows deleted by id, reads).

Migrations: `wheelfarm_schema` holds the schema's version; `migrate` applies the steps
past it, under a PostgreSQL advisory lock (masters starting together take turns), on the
first use by each process, so a running farm's database is upgraded by its next master
start and Buildbot's own migrations (alembic) never see or touch these tables. Files an
older farm kept (the basedir's `campaigns/` and `status.jsonl`) are imported by the same
first use and renamed `*.imported`: once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
import sqlalchemy.dialects.postgresql
import sqlalchemy.dialects.sqlite
from buildbot.db.enginestrategy import create_engine
from twisted.python import log

SCHEMA_VERSION = 1
LOCK_KEY = 0x77686C66  # "whlf": the advisory lock migrations take on PostgreSQL
CHUNK = 500  # rows per statement when deleting or importing
RETRY_FOR = 30.0  # seconds a call is tried again while the database is away (a restart)
T = TypeVar("T")

metadata = sa.MetaData()
schema = sa.Table("wheelfarm_schema", metadata, sa.Column("version", sa.Integer, nullable=False))
campaigns = sa.Table(
    "wheelfarm_campaigns",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    # the build request driving it: another master's retry of that request resumes it
    sa.Column("orchestrated_by", sa.Integer, index=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("data", sa.Text, nullable=False),  # the whole record, JSON
)
status = sa.Table(
    "wheelfarm_status",
    metadata,
    # append-only: the newest row of a (package, version, platform, Python) wins
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # every master hears every finished build (the router): the first to write it wins
    sa.Column("buildid", sa.Integer, unique=True),
    sa.Column("package", sa.String(255), nullable=False, index=True),
    sa.Column("data", sa.Text, nullable=False),  # the row, JSON
)


class StateDB:
    """One engine per (db_url, basedir) and process; migrated on first use."""

    _open: dict[tuple[str, str], StateDB] = {}
    _open_lock = threading.Lock()

    def __init__(self, db_url: str, basedir: Path | str) -> None:
        self.db_url, self.basedir = db_url, Path(basedir)
        self._engine: sa.Engine | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, db_url: str, basedir: Path | str) -> StateDB:
        key = (db_url, str(Path(basedir).resolve()))
        with cls._open_lock:
            if key not in cls._open:
                cls._open[key] = cls(db_url, basedir)
            return cls._open[key]

    @property
    def engine(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                kwargs: dict[str, Any] = {"basedir": str(self.basedir)}
                if self.db_url.startswith("sqlite"):  # wait for Buildbot's writes, not fail
                    kwargs["connect_args"] = {"timeout": 30}
                engine = create_engine(self.db_url, **kwargs, **engine_options(self.db_url))
                migrate(engine)
                import_files(engine, self.basedir)
                self._engine = engine
            return self._engine

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _retried(self, what: str, call: Callable[[], T]) -> T:
        """`call()`, tried again while it meets an OperationalError, for up to RETRY_FOR
        seconds (each retry logged in one line); then its error."""
        deadline, delay = time.monotonic() + RETRY_FOR, 0.1
        while True:
            try:
                return call()
            except sa.exc.OperationalError as e:
                if time.monotonic() + delay > deadline:
                    raise
                log.msg(f"wheelfarm: {what}: {one_line(e)}; trying again in {delay:.1f} s")
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- campaigns: the record is JSON the cascade stage reads and writes

    def campaign_save(self, record: dict[str, Any]) -> None:
        values = {
            "orchestrated_by": record.get("orchestrated_by"),
            "created_at": record["created_at"],
            "finished_at": record.get("finished_at"),
            "data": json.dumps(record, separators=(",", ":")),
        }

        def save() -> None:
            with self.begin() as conn:
                done = conn.execute(
                    campaigns.update().where(campaigns.c.id == record["id"]).values(**values)
                )
                if not done.rowcount:
                    conn.execute(campaigns.insert().values(id=record["id"], **values))

        self._retried(f"saving campaign {record['id']}", save)

    def campaign_load(self, campaign_id: str) -> dict[str, Any] | None:
        def load() -> str | None:
            with self.begin() as conn:
                query = sa.select(campaigns.c.data).where(campaigns.c.id == campaign_id)
                return conn.execute(query).scalar()

        data = self._retried(f"reading campaign {campaign_id}", load)
        return json.loads(data) if data is not None else None

    def campaign_all(self, unfinished_of: int | None = None) -> list[dict[str, Any]]:
        """Newest first; with `unfinished_of`, only the unfinished ones that request drove."""
        query = sa.select(campaigns.c.data).order_by(campaigns.c.created_at.desc())
        if unfinished_of is not None:
            query = query.where(
                campaigns.c.orchestrated_by == unfinished_of, campaigns.c.finished_at.is_(None)
            )

        def read() -> list[str]:
            with self.begin() as conn:
                return list(conn.execute(query).scalars())

        return [json.loads(data) for data in self._retried("reading campaigns", read)]

    # -- status rows

    def status_add(self, rows: Iterable[tuple[int | None, dict[str, Any]]]) -> None:
        """(buildid, row) pairs; a build some master wrote already is left out."""
        values = [
            {"buildid": buildid, "package": row["package"], "data": json.dumps(row)}
            for buildid, row in rows
        ]
        if not values:
            return

        def add() -> None:
            with self.begin() as conn:
                _insert_new(conn, values)

        self._retried(f"saving {len(values)} status rows", add)

    def status_since(
        self, after: int, limit: int | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        """The rows after id `after`, in id order; at most `limit`."""
        query = sa.select(status.c.id, status.c.data).where(status.c.id > after)

        def read() -> list[Any]:
            with self.begin() as conn:
                return list(conn.execute(query.order_by(status.c.id).limit(limit)).all())

        rows = self._retried("reading status rows", read)
        return [(i, json.loads(data)) for i, data in rows]

    def status_delete(self, ids: list[int]) -> None:
        """Drop rows a newer row of their key replaced (any master may: it is idempotent)."""

        def delete() -> None:
            with self.begin() as conn:
                for start in range(0, len(ids), CHUNK):
                    conn.execute(status.delete().where(status.c.id.in_(ids[start : start + CHUNK])))

        self._retried(f"deleting {len(ids)} status rows", delete)


def engine_options(db_url: str) -> dict[str, Any]:
    """SQLAlchemy options for every engine on the farm's database, Buildbot's own too (its
    `engine_kwargs`): on a database server, each connection is checked before use and a
    dropped one replaced; SQLite's connections do not drop."""
    if sa.engine.make_url(db_url).get_backend_name() == "sqlite":
        return {}
    return {"pool_pre_ping": True}


def one_line(e: BaseException) -> str:
    """A database error in one line: the driver's first line, without the SQL."""
    orig = getattr(e, "orig", None) or e
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"


def _insert_new(conn: sa.Connection, values: list[dict[str, Any]]) -> None:
    dialect = conn.dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = (
            sa.dialects.postgresql.insert if dialect == "postgresql" else sa.dialects.sqlite.insert
        )
        conn.execute(insert(status).on_conflict_do_nothing(index_elements=["buildid"]), values)
        return
    for value in values:  # other databases: one at a time, a duplicate is skipped
        try:
            with conn.begin_nested():
                conn.execute(status.insert(), value)
        except sa.exc.IntegrityError:
            pass


def schema_version(conn: sa.Connection) -> int:
    if not sa.inspect(conn).has_table(schema.name):
        return 0
    return conn.execute(sa.select(sa.func.max(schema.c.version))).scalar() or 0


def migrate(engine: sa.Engine) -> int:
    """Bring the farm's tables to SCHEMA_VERSION; the version found before."""
    for attempt in range(5):
        try:
            return _migrate(engine)
        except sa.exc.OperationalError:
            # SQLite's driver runs DDL outside a transaction: masters starting together
            # may both create a table; the loser finds it there the next time
            if attempt == 4:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def _migrate(engine: sa.Engine) -> int:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # DDL is transactional there: one at a time
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        found = schema_version(conn)
        if found < 1:
            metadata.create_all(conn, tables=[schema, campaigns, status], checkfirst=True)
        # later versions: `if found < 2: ...` (ALTER TABLE), in order
        if found < SCHEMA_VERSION:
            conn.execute(schema.delete())
            conn.execute(schema.insert().values(version=SCHEMA_VERSION))
            log.msg(f"wheelfarm: farm tables migrated from version {found} to {SCHEMA_VERSION}")
        return found


def import_files(engine: sa.Engine, basedir: Path) -> None:
    """Move an older farm's files into the tables, once (each is renamed `*.imported`)."""
    folder = basedir / "campaigns"
    if folder.is_dir():
        with engine.begin() as conn:
            have = set(conn.execute(sa.select(campaigns.c.id)).scalars())
            for path in sorted(folder.glob("*.json")):
                try:
                    record = json.loads(path.read_text())
                except ValueError as e:
                    log.msg(f"wheelfarm: {path}: not imported: {e}")
                    continue
                if record.get("id") not in have:
                    conn.execute(
                        campaigns.insert().values(
                            id=record["id"],
                            orchestrated_by=record.get("orchestrated_by"),
                            created_at=record.get("created_at") or 0.0,
                            finished_at=record.get("finished_at"),
                            data=json.dumps(record, separators=(",", ":")),
                        )
                    )
        folder.rename(folder.with_name("campaigns.imported"))
        log.msg(f"wheelfarm: imported the campaign records of {folder}")
    path = basedir / "status.jsonl"
    if path.is_file():
        rows = []
        with path.open("rb") as f:
            for line in f:
                try:
                    text = line.decode().strip()
                    rows.append(
                        {"buildid": None, "package": json.loads(text)["package"], "data": text}
                    )
                except (ValueError, KeyError, TypeError):  # a line cut short by a crash
                    continue
        with engine.begin() as conn:
            for start in range(0, len(rows), CHUNK):
                conn.execute(status.insert(), rows[start : start + CHUNK])
        path.rename(path.with_name("status.jsonl.imported"))
        log.msg(f"wheelfarm: imported {len(rows)} status rows of {path}")
