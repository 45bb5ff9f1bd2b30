"""PostgreSQL behind the same units of work: the one place that knows the SQL dialects differ.

The query classes and the numbered migrations are written once, in SQLite's dialect, against `sqlite3.Connection`.
On PostgreSQL, `PgConnection` stands in for that connection (psycopg 3, synchronous, in autocommit mode so the
`Database` issues `BEGIN`, `SAVEPOINT`, `COMMIT` itself, exactly as on SQLite) and translates each statement once
(cached):

* queries (`translate_query`): `?` placeholders become `%s` (a literal `%` is doubled), numbered ones (`?2`)
  `%(p2)s`; a subquery in FROM without a name gets one; `SET a = a + excluded.a` in an upsert names the table of
  the bare `a`; `INSERT OR IGNORE` becomes `... ON CONFLICT DO NOTHING`; `x IS ?` becomes
  `x IS NOT DISTINCT FROM %s`; `BEGIN IMMEDIATE` becomes `BEGIN`;
* migrations (`translate_ddl`): `INTEGER` columns become `BIGINT` (money in micro-dollars and Discord ids need 64
  bits), `id INTEGER PRIMARY KEY [AUTOINCREMENT]` an identity column, a table that SQLite gives an implicit `rowid` (no
  `INTEGER PRIMARY KEY`, no `WITHOUT ROWID`) a `rowid` identity column so `ORDER BY rowid` keeps insertion order,
  `WITHOUT ROWID` is dropped, and each `CREATE TRIGGER ... BEGIN ... END` becomes a PL/pgSQL function and a
  `FOR EACH ROW` trigger (`SELECT RAISE(ABORT, 'm')` raises with SQLSTATE 23000, an integrity error, as on SQLite);
  `DROP TRIGGER IF EXISTS name` drops it on whichever table holds it.
* SQLite's `json_valid(text)` and `json_extract(text, '$.a.b')` exist as immutable SQL functions (`FUNCTIONS`),
  created before the first migration, so checks and expression indexes read the same.

A failed INSERT, UPDATE or DELETE inside a transaction undoes only itself (each runs under a savepoint), as a
failed statement does in SQLite, so a unit may catch `IntegrityError` and go on. Results look like SQLite's:
rows are `PgRow` (by index and by column name, like `sqlite3.Row`), `numeric` sums that are whole come back as
`int`, booleans as 0 or 1; `cursor.lastrowid` reads the identity of the table just
inserted into. A constraint violation raises `sqlite3.IntegrityError` and any other database error
`sqlite3.OperationalError`, so the callers' `except` clauses hold for both engines.

Times stay integer Unix milliseconds (UTC) in `BIGINT` columns and the session runs with `TimeZone = UTC`.

A peer stuck inside a transaction (stopped with SIGSTOP, cut off by the network) would hold its locks (the budget
locks among them) and stall every process: each session runs with `idle_in_transaction_session_timeout`, so the server
ends such a transaction (our own are never idle that long), and `lock_timeout`, so a wait for a busy holder fails
(SQLSTATE 55P03) instead of lasting forever.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import pq

URL_SCHEMES = ("postgresql", "postgres")

IDLE_IN_TRANSACTION_TIMEOUT_MS = 15_000
"""The server ends a session idle inside a transaction this long (its locks go with it): a stuck peer's."""

LOCK_TIMEOUT_MS = 60_000
"""The longest a statement waits for a lock (a budget lock, a row) before it fails."""

FUNCTIONS = (
    """CREATE OR REPLACE FUNCTION json_valid(doc text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
    PERFORM doc::json;
    RETURN true;
EXCEPTION WHEN others THEN
    RETURN false;
END $fn$""",
    """CREATE OR REPLACE FUNCTION json_extract(doc text, path text) RETURNS text LANGUAGE sql IMMUTABLE AS $fn$
SELECT doc::jsonb #>> string_to_array(substr(path, 3), '.')
$fn$""",
)
"""SQLite's JSON functions the schema and the queries use, as PostgreSQL functions."""


class PostgresUrlError(ValueError):
    """`ATELIER_DATABASE` looks like a PostgreSQL URL but cannot be one."""


def is_postgres_url(target: object) -> bool:
    """Tell whether `target` names a PostgreSQL server (`postgresql://...` or `postgres://...`)."""
    return isinstance(target, str) and target.split("://", 1)[0].lower() in URL_SCHEMES and "://" in target


def check_url(url: str) -> str:
    """Return `url` if psycopg can use it; raise `PostgresUrlError` with one sentence otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise PostgresUrlError(f"is not a valid PostgreSQL URL: {exc}") from exc
    if not parts.hostname and "host=" not in parts.query:
        raise PostgresUrlError("is a PostgreSQL URL without a host (postgresql://USER:PASSWORD@HOST:PORT/DATABASE)")
    if not parts.path.strip("/"):
        raise PostgresUrlError("is a PostgreSQL URL without a database name (postgresql://USER@HOST:PORT/DATABASE)")
    if port == 0:
        raise PostgresUrlError("is a PostgreSQL URL with port 0")
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise PostgresUrlError(f"is not a valid PostgreSQL URL: {exc}") from exc
    return url


def redact(url: str) -> str:
    """Return the URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


# Queries --------------------------------------------------------------------------------------------------------------

_QUOTED = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")")
_IS_PARAM = re.compile(r"\bIS\s+(NOT\s+)?\?", re.IGNORECASE)
_NUMBERED = re.compile(r"\?(\d+)")
_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.IGNORECASE)


@lru_cache(maxsize=1024)
def translate_query(sql: str) -> str:
    """One statement in SQLite's dialect, as PostgreSQL and psycopg's `%s` placeholders take it."""
    stripped = sql.strip().rstrip(";").strip()
    if re.fullmatch(r"BEGIN(\s+(IMMEDIATE|DEFERRED|EXCLUSIVE))?", stripped, re.IGNORECASE):
        return "BEGIN"
    pieces = _QUOTED.split(sql)
    out: list[str] = []
    for index, piece in enumerate(pieces):
        if index % 2:  # a quoted literal or identifier: only `%` needs escaping
            out.append(piece.replace("%", "%%"))
            continue
        piece = piece.replace("%", "%%")
        piece = _IS_PARAM.sub(lambda m: "IS DISTINCT FROM ?" if m.group(1) else "IS NOT DISTINCT FROM ?", piece)
        piece = _NUMBERED.sub(lambda m: f"%(p{m.group(1)})s", piece)
        out.append(piece.replace("?", "%s"))
    text = _alias_subqueries(_qualify_upserts("".join(out)))
    if _INSERT_OR_IGNORE.match(text):
        text = _INSERT_OR_IGNORE.sub("INSERT INTO", text, count=1).rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
    return text


_NOT_AN_ALIAS = frozenset(
    [
        "where",
        "left",
        "right",
        "inner",
        "outer",
        "full",
        "cross",
        "join",
        "union",
        "except",
        "intersect",
        "group",
        "order",
        "limit",
        "on",
        "having",
        "window",
        "natural",
        "using",
        "offset",
    ]
)
_UPSERT = re.compile(r"\bINSERT\s+INTO\s+(\w+).*?\bDO\s+UPDATE\s+SET\b", re.IGNORECASE | re.DOTALL)
_WORDS_KEPT = frozenset(
    [
        "case",
        "when",
        "then",
        "else",
        "end",
        "null",
        "and",
        "or",
        "not",
        "is",
        "in",
        "between",
        "like",
        "excluded",
        "coalesce",
        "distinct",
        "from",
        "true",
        "false",
    ]
)


def _alias_subqueries(sql: str) -> str:
    """Name every subquery in a FROM clause that has no name (PostgreSQL before 16 requires one)."""
    result = sql
    position = 0
    count = 0
    pattern = re.compile(r"\bFROM\s*\(\s*SELECT\b", re.IGNORECASE)
    while match := pattern.search(result, position):
        start = result.index("(", match.start())
        depth = 0
        end = start
        for end in range(start, len(result)):
            if result[end] == "(":
                depth += 1
            elif result[end] == ")":
                depth -= 1
                if depth == 0:
                    break
        following = re.match(r"\s*(\w+)", result[end + 1 :])
        if following is None or following.group(1).lower() in _NOT_AN_ALIAS:
            count += 1
            result = f"{result[: end + 1]} AS _sub{count}{result[end + 1 :]}"
        position = start + 1
    return result


def _qualify_upserts(sql: str) -> str:
    """In `ON CONFLICT ... DO UPDATE SET a = a + excluded.a`, name the table of the bare `a` (else it is ambiguous)."""
    match = _UPSERT.search(sql)
    if match is None:
        return sql
    table = match.group(1)
    head, tail = sql[: match.end()], sql[match.end() :]
    stop = re.search(r"\b(WHERE|RETURNING)\b|;", tail, re.IGNORECASE)
    clause, rest = (tail[: stop.start()], tail[stop.start() :]) if stop else (tail, "")
    assignments = []
    for assignment in _split_top_level(clause):
        column, _, expression = assignment.partition("=")
        expression = re.sub(
            r"(?<![.\w%'])([A-Za-z_]\w*)\b(?!\s*[.(])",
            lambda m: m.group(1) if m.group(1).lower() in _WORDS_KEPT else f"{table}.{m.group(1)}",
            expression,
        )
        assignments.append(f"{column}={expression}")
    return head + ",".join(assignments) + rest


def _split_top_level(clause: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in clause:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


# Migrations -----------------------------------------------------------------------------------------------------------

_TRIGGER = re.compile(
    r"^\s*CREATE\s+TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s+(BEFORE|AFTER)\s+(INSERT|UPDATE|DELETE)\s+ON\s+(\w+)"
    r"(?:\s+FOR\s+EACH\s+ROW)?(?:\s+WHEN\s+(.*?))?\s+BEGIN\b(.*)\bEND\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_DROP_TRIGGER = re.compile(r"^\s*DROP\s+TRIGGER\s+(IF\s+EXISTS\s+)?(\w+)\s*;?\s*$", re.IGNORECASE)
_RAISE = re.compile(r"SELECT\s+RAISE\s*\(\s*(?:ABORT|FAIL|ROLLBACK)\s*,\s*('(?:[^']|'')*')\s*\)", re.IGNORECASE)
_LINE_COMMENT = re.compile(r"--[^\n]*")
_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s*\(", re.IGNORECASE)


def translate_ddl(sql: str) -> list[str]:
    """One migration statement in SQLite's dialect as the PostgreSQL statements that do the same."""
    sql = "\n".join(line for line in _LINE_COMMENT.sub("", sql).splitlines() if line.strip())
    trigger = _TRIGGER.match(sql)
    if trigger:
        return _trigger(*trigger.groups())
    drop = _DROP_TRIGGER.match(sql)
    if drop:
        name = drop.group(2)
        return [
            "DO $drop$ DECLARE r record; BEGIN FOR r IN SELECT tgrelid::regclass AS t FROM pg_trigger"
            f" WHERE tgname = '{name}' LOOP EXECUTE format('DROP TRIGGER %I ON %s', '{name}', r.t); END LOOP;"
            f" END $drop$"
        ]
    text = sql.strip().rstrip(";")
    table = _CREATE_TABLE.match(text)
    if table:
        text = _table(text)
    text = re.sub(r"\bINTEGER\b", "BIGINT", text, flags=re.IGNORECASE)
    return [text]


def _table(text: str) -> str:
    without_rowid = re.search(r"\)\s*WITHOUT\s+ROWID\s*$", text, re.IGNORECASE)
    if without_rowid:
        return text[: without_rowid.start()] + ")"
    text = re.sub(r"\s+AUTOINCREMENT\b", "", text, flags=re.IGNORECASE)  # an identity never reuses a number either
    id_key = re.compile(r"\bid\s+INTEGER\s+PRIMARY\s+KEY\b", re.IGNORECASE)
    if id_key.search(text):
        return id_key.sub("id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", text, count=1)
    if re.search(r"\bINTEGER\s+PRIMARY\s+KEY\b", text, re.IGNORECASE):
        return text  # SQLite's rowid is that column; it is an ordinary key here
    head = _CREATE_TABLE.match(text)
    assert head is not None
    return text[: head.end()] + "\n    rowid BIGINT GENERATED ALWAYS AS IDENTITY," + text[head.end() :]


def _trigger(name: str, timing: str, event: str, table: str, when: str | None, body: str) -> list[str]:
    statements = _RAISE.sub(lambda m: f"RAISE EXCEPTION {m.group(1)} USING ERRCODE = '23000'", body.strip())
    statements = ";".join(_qualify_upserts(statement) for statement in statements.split(";"))
    row = "OLD" if event.upper() == "DELETE" else "NEW"
    function = (
        f"CREATE OR REPLACE FUNCTION {name}_fn() RETURNS trigger LANGUAGE plpgsql AS $trigger$\n"
        f"BEGIN\n{statements}\nRETURN {row};\nEND $trigger$"
    )
    condition = f" WHEN ({when.strip()})" if when else ""
    create = f"CREATE TRIGGER {name} {timing} {event} ON {table} FOR EACH ROW{condition} EXECUTE FUNCTION {name}_fn()"
    return [function, create]


# The connection -------------------------------------------------------------------------------------------------------


class PgRow(tuple[Any, ...]):
    """A result row read by position or by column name, as `sqlite3.Row` is."""

    _names: dict[str, int]

    def __new__(cls, values: Iterable[Any], names: dict[str, int]) -> PgRow:  # noqa: D102 - the class says it
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        """Return the column names, in order."""
        return list(self._names)


def _value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _param(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def _params(text: str, params: Sequence[Any] | None) -> tuple[Any, ...] | dict[str, Any]:
    values = () if params is None else tuple(_param(value) for value in params)
    if "%(p" in text:  # numbered placeholders (`?1`): psycopg takes them by name
        return {f"p{index}": value for index, value in enumerate(values, start=1)}
    return values


def _row_factory(cursor: psycopg.Cursor[Any]) -> Any:
    names = {column.name: index for index, column in enumerate(cursor.description or ())}
    return lambda values: PgRow((_value(value) for value in values), names)


_SQLITE_WORDS = {
    "23514": "CHECK constraint failed",
    "23505": "UNIQUE constraint failed",
    "23502": "NOT NULL constraint failed",
    "23503": "FOREIGN KEY constraint failed",
}
"""SQLite's words for each constraint violation, put first so a message reads the same on both engines."""


def _sqlite_error(exc: psycopg.Error) -> sqlite3.Error:
    message = str(exc).strip()
    state = exc.sqlstate or ""
    if state.startswith("23"):
        words = _SQLITE_WORDS.get(state)
        error: sqlite3.Error = sqlite3.IntegrityError(f"{words}: {message}" if words else message)
    else:
        error = sqlite3.OperationalError(message)
    error.sqlstate = state  # type: ignore[attr-defined]  # read by the unit's retry (deadlock, serialization)
    return error


_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
_INSERT_TABLE = re.compile(r"^\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+(\w+)", re.IGNORECASE)


class PgCursor:
    """The cursor of one statement, with the parts of `sqlite3.Cursor` the query classes use."""

    def __init__(self, conn: PgConnection, cursor: psycopg.Cursor[Any], table: str | None) -> None:
        self._conn = conn
        self._cursor = cursor
        self._table = table

    @property
    def rowcount(self) -> int:
        """Rows the statement changed (or returned)."""
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        """The identity given to the row the last INSERT added (its `id`, else its `rowid`); None if it has none."""
        if self._table is None:
            return None
        row = self._conn.raw.execute(
            "SELECT currval(pg_get_serial_sequence(%s, a.attname)) FROM pg_attribute AS a"
            " WHERE a.attrelid = %s::regclass AND a.attname IN ('id', 'rowid') AND a.attidentity <> ''"
            " ORDER BY a.attname = 'id' DESC LIMIT 1",
            (self._table, self._table),
        ).fetchone()
        return None if row is None else int(row[0])

    @property
    def description(self) -> Any:
        """The result's columns."""
        return self._cursor.description

    def fetchone(self) -> Any:
        """Return the next row, or None."""
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Any]:
        """Return the remaining rows."""
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConnection:
    """A psycopg connection with the face of `sqlite3.Connection` that units of work use (see the module's notes)."""

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    @classmethod
    def connect(cls, url: str, *, timeout: float = 10.0) -> PgConnection:
        """Connect in autocommit mode, the session in UTC with the stuck-peer timeouts (the module's notes).

        Raises `psycopg.OperationalError` if the server cannot be reached.
        """
        raw = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(timeout)), row_factory=_row_factory)
        raw.execute("SET TimeZone = 'UTC'")
        raw.execute(f"SET idle_in_transaction_session_timeout = {int(IDLE_IN_TRANSACTION_TIMEOUT_MS)}")
        raw.execute(f"SET lock_timeout = {int(LOCK_TIMEOUT_MS)}")
        return cls(raw)

    @property
    def in_transaction(self) -> bool:
        """True inside BEGIN ... COMMIT (also when the transaction failed and awaits its rollback)."""
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> PgCursor:
        """Run one statement written in SQLite's dialect."""
        text = translate_query(sql)
        guarded = self.in_transaction and _WRITE.match(text) is not None
        try:
            if guarded:  # a failed write undoes only itself, as in SQLite (PostgreSQL would abort the transaction)
                self.raw.execute("SAVEPOINT statement")
            cursor = self.raw.execute(text, _params(text, params))
            if guarded:
                self.raw.execute("RELEASE statement")
        except psycopg.Error as exc:
            if guarded and self.raw.info.transaction_status == pq.TransactionStatus.INERROR:
                self.raw.execute("ROLLBACK TO statement")
                self.raw.execute("RELEASE statement")
            raise _sqlite_error(exc) from exc
        table = _INSERT_TABLE.match(sql)
        return PgCursor(self, cursor, table.group(1) if table else None)

    def executemany(self, sql: str, seq_of_params: Iterable[Sequence[Any]]) -> PgCursor:
        """Run one statement once per set of parameters."""
        text = translate_query(sql)
        cursor = self.raw.cursor()
        try:
            cursor.executemany(text, [_params(text, params) for params in seq_of_params])
        except psycopg.Error as exc:
            raise _sqlite_error(exc) from exc
        return PgCursor(self, cursor, None)

    def execute_ddl(self, sql: str) -> None:
        """Run one migration statement (SQLite's dialect), translated to the statements PostgreSQL needs."""
        for statement in translate_ddl(sql):
            try:
                self.raw.execute(statement)
            except psycopg.Error as exc:
                raise _sqlite_error(exc) from exc

    def iterdump(self) -> Iterator[str]:
        """Every table's rows in a fixed order, one line each (compare two states, as `sqlite3`'s dump is used)."""
        tables = self.raw.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
        ).fetchall()
        for (table,) in tables:
            width = len(self.raw.execute(f'SELECT * FROM "{table}" LIMIT 0').description or ())
            order = ", ".join(str(index) for index in range(1, width + 1))
            for row in self.raw.execute(f'SELECT * FROM "{table}" ORDER BY {order}'):
                yield f"{table} {tuple(row)!r}"

    def close(self) -> None:
        """Close the connection."""
        self.raw.close()
