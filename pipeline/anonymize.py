"""Anonymised samples for CI and bug reports: keyed pseudonyms, every quirk kept.

``servicedesk-etl anonymize --source raw.db --out sample.db [--fraction 0.1] [--key-file K]``
writes a copy of a raw database that can leave the operator's machine:

- Names, usernames, e-mail addresses, client/account names (the columns the contracts
  mark ``personal``, plus :data:`EXTRA_NAME_COLUMNS`) become keyed pseudonyms: HMAC-SHA256
  of the trimmed original, so equal strings get equal pseudonyms in every table and in
  every run with the same key (``TKT-Assigned To User``, ``TS-User Full Name``, comment
  ``user_name`` and ``TS-User Username`` stay joinable). A pseudonym keeps the original's
  length and shape: letters stay letters (upper or lower case), digits stay digits,
  spaces, punctuation and ``@`` stay where they were, so the contracts' patterns and the
  profiler's whitespace and placeholder findings give the same verdicts. The local part
  of an e-mail address maps like a username (``jsmith`` and ``jsmith@corp.com.au`` stay
  related); domain labels map too, the top-level label is kept.
- Free text (``long_text`` columns, plus :data:`EXTRA_TEXT_COLUMNS`) becomes pseudo-text
  of the same length with the same quirks: NUL bytes, CR/LF mixes, runs of blank lines,
  leading and trailing spaces stay exactly where they were; only letters and digits are
  redrawn, from a keyed stream that does not depend on the original letters (no
  substitution cipher to break).
- Empty strings, whitespace-only strings, NULLs and placeholder tokens (``--None--``,
  `` PendingAssignment``, the configured ``placeholder_tokens``) are kept as they are; so
  are values in those columns that are wholly a date.
- Every other declared column (ids, dates in their original text form, numbers,
  statuses, teams, categories, flags) is copied by SQLite itself, never through Python,
  so storage classes and bytes stay exactly as they were. Columns and tables the
  contracts do not declare are treated as free text (fail-safe), except values that
  are wholly a number or a date.

The key is 32 random bytes, read from ``--key-file`` or generated (mode 0600) into
``.servicedesk/anonymize.key``; it is never written into the output or a log line.

``--fraction`` samples deterministically (keyed hash, plus ``seed``): a ticket is kept
by the hash of its id; its comments and timesheets come with it (referential closure);
rows whose reference points at no ticket at all (orphans, admin time ``0``) are kept by
the hash of their own key, so orphans remain at the same rate; rows sharing a key
(duplicates) are kept or dropped together.

The output is written to a temporary file next to ``--out`` and renamed into place
only on success; the source is opened read-only and ``--out`` may not be the source.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import sqlite3
import stat
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from contracts.schemas import REGISTRY, contract_for
from contracts.spec import facts, is_long_text, is_personal, placeholders
from pipeline.config import Settings
from pipeline.errors import ConfigError, InputFileError, ResourceExhausted
from pipeline.observe import Progress, stage_trace
from pipeline.sources import check_sqlite_file, quote_sqlite
from pipeline.values import detect_kind, is_placeholder, placeholder_set, to_integer

log = logging.getLogger(__name__)

KEY_BYTES = 32
MIN_KEY_BYTES = 16
DEFAULT_KEY_FILE = Path(".servicedesk") / "anonymize.key"

# Identifying values the contracts do not mark ``personal`` (it only hides values from
# failure samples): customer account names name the customer as surely as a client name.
EXTRA_NAME_COLUMNS: dict[str, tuple[str, ...]] = {
    "tickets": ("TKT-Account Name",),
    "timesheets": ("TS-Account Name",),
}
# Free text the contracts do not mark ``long_text`` (no hygiene needed) yet written by people.
EXTRA_TEXT_COLUMNS: dict[str, tuple[str, ...]] = {
    "timesheets": ("TS-Title",),
}

# What happens to a column's values.
KEEP = "keep"  # copied by SQLite, untouched
NAME = "name"  # keyed pseudonym, consistent across tables
TEXT = "text"  # keyed pseudo-text of the same shape
LOOSE = "loose"  # undeclared column: pseudo-text unless wholly a number or a date

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
# Values longer than this are never "wholly a date or a number": skip the costly check.
_SHORT = 40
_NON_TEXT_KINDS = frozenset({"integer", "numeric", "timestamp", "date"})
_DATE_KINDS = frozenset({"timestamp", "date"})
_DIGIT_RE = re.compile(r"\d")


def _whole_kind(value: str) -> str:
    """The kind of a short value taken whole (a date, a number), else "text".

    Dates and numbers hold digits: values without one skip the costly detection.
    """
    if len(value) > _SHORT or not _DIGIT_RE.search(value):
        return "text"
    return detect_kind(value) or "text"


@dataclass(frozen=True)
class AnonymizeConfig:
    source: Path
    out: Path
    fraction: float = 1.0
    key_file: Path | None = None  # None: DEFAULT_KEY_FILE, generated when absent
    seed: int = 0  # varies the sample drawn at a given fraction; pseudonyms ignore it
    settings: Settings = field(default_factory=Settings)


@dataclass(frozen=True)
class TableSample:
    table: str
    rows_read: int
    rows_written: int
    pseudonymized: tuple[str, ...]  # columns whose values were replaced


@dataclass(frozen=True)
class AnonymizeResult:
    out: Path
    key_file: Path
    key_generated: bool
    fraction: float
    tables: tuple[TableSample, ...]
    pseudonyms: int  # distinct names, usernames and addresses mapped
    seconds: float

    def rows_written(self, table: str) -> int:
        return next((t.rows_written for t in self.tables if t.table == table), 0)


# --- the key ----------------------------------------------------------------------------


def load_or_create_key(key_file: Path | None) -> tuple[bytes, Path, bool]:
    """The key bytes, where they live, and whether they were generated just now.

    A key file named explicitly must exist: a silently generated new key would give
    every person a new pseudonym. The default file is created (mode 0600) when absent.
    """
    if key_file is not None:
        path = Path(key_file)
        if not path.is_file():
            raise InputFileError(
                f"--key-file {path} does not exist",
                f"give the key file of earlier samples, or drop --key-file to use (or create) {DEFAULT_KEY_FILE}",
            )
        return _read_key(path), path, False
    path = DEFAULT_KEY_FILE
    if path.is_file():
        return _read_key(path), path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    fd, tmp = tempfile.mkstemp(prefix=".anonymize.", suffix=".key", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, key)
        os.fsync(fd)
        os.close(fd)
        # link, not replace: a key another process created meanwhile wins over ours.
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _read_key(path), path, False
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    log.info("generated a new anonymisation key", extra={"key_file": str(path)})
    return key, path, True


def _read_key(path: Path) -> bytes:
    try:
        key = path.read_bytes()
        mode = path.stat().st_mode
    except OSError as exc:
        raise InputFileError(f"key file {path} cannot be read: {exc.strerror}", "check the file's permissions") from None
    if len(key) < MIN_KEY_BYTES:
        raise InputFileError(
            f"key file {path} holds {len(key)} bytes, fewer than {MIN_KEY_BYTES}",
            f"use a file of {KEY_BYTES} random bytes (e.g. head -c {KEY_BYTES} /dev/urandom > {path}; chmod 600 {path})",
        )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the anonymisation key file is readable by others: chmod 600 it", extra={"key_file": str(path)})
    return key


# --- pseudonyms ---------------------------------------------------------------------------

# Character classes by code point: 0 kept, 1 lower-case letter, 2 upper-case letter,
# 3 digit. Outside the Basic Multilingual Plane everything is kept (emoji and the like).
_KEEP, _LOWER, _UPPER, _DIGIT = 0, 1, 2, 3
# Per class: the first code of the replacement range and its width (class 0: itself).
_BASE = np.array([0, 97, 65, 48], dtype=np.uint32)
_SPAN = np.array([1, 26, 26, 10], dtype=np.uint32)


def _class_of(ch: str) -> int:
    if ch.isdigit() or ch.isnumeric():
        return _DIGIT
    if ch.isupper() or ch.istitle():
        return _UPPER
    if ch.isalpha():
        return _LOWER
    return _KEEP


# (class << 8 | drawn byte) -> the replacement character's code (class 0: unused).
_REPLACEMENT = np.array(
    [0 if cls == _KEEP else int(_BASE[cls] + d % _SPAN[cls]) for cls in range(4) for d in range(256)], dtype=np.uint8
)
_ASCII_CLASSES = np.array([_class_of(chr(b)) for b in range(128)] + [_KEEP] * 128, dtype=np.uint8)


@lru_cache(maxsize=1)
def _bmp_classes() -> np.ndarray:
    return np.array([_class_of(chr(cp)) for cp in range(0x10000)], dtype=np.uint8)


def reshape(text: str, seed: bytes, *, digits_only: bool = False) -> tuple[str, int]:
    """``text`` with its letters and digits redrawn from a stream keyed by ``seed``.

    Letters become ASCII letters of the same case, digits ASCII digits; every other
    character (spaces, CR, LF, NUL, punctuation, ``@``) stays in place, so the result
    has the same length and shape. Returns the new text and how many characters were
    redrawn (0: nothing to hide, the text came back unchanged).
    """
    if not text:
        return text, 0
    if len(text) <= _SHORT and text.isascii():
        return _reshape_short(text, seed, digits_only)
    if text.isascii():  # the common case: one byte per character, one table look-up
        codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        classes = _ASCII_CLASSES[codes]
        if digits_only:
            classes = np.where(classes == _DIGIT, classes, np.uint8(_KEEP))
        changed = int(np.count_nonzero(classes))
        if not changed:
            return text, 0
        draw = np.frombuffer(hashlib.shake_256(seed).digest(len(codes)), dtype=np.uint8)
        index = classes.astype(np.uint16)
        index <<= 8
        index |= draw
        out = _REPLACEMENT[index]
        np.copyto(out, codes, where=classes == _KEEP)
        return out.tobytes().decode("ascii"), changed
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    classes = np.where(codes < 0x10000, _bmp_classes()[np.minimum(codes, 0xFFFF)], _KEEP).astype(np.uint8)
    if digits_only:
        classes = np.where(classes == _DIGIT, classes, np.uint8(_KEEP))
    changed = int(np.count_nonzero(classes))
    if not changed:
        return text, 0
    draw = np.frombuffer(hashlib.shake_256(seed).digest(len(codes)), dtype=np.uint8)
    out = np.where(classes == _KEEP, codes, _BASE[classes] + draw % _SPAN[classes]).astype("<u4")
    return out.tobytes().decode("utf-32-le", "surrogatepass"), changed


_ASCII_CLASS_BYTES = _ASCII_CLASSES.tobytes()
_DIGITS_ONLY_BYTES = bytes(c if c == _DIGIT else _KEEP for c in _ASCII_CLASS_BYTES)


def _reshape_short(text: str, seed: bytes, digits_only: bool) -> tuple[str, int]:
    # Names and titles: plain Python beats numpy's per-call cost; same formula, same result.
    raw = text.encode("ascii")
    classes = raw.translate(_DIGITS_ONLY_BYTES if digits_only else _ASCII_CLASS_BYTES)
    changed = len(classes) - classes.count(_KEEP)
    if not changed:
        return text, 0
    draw = hashlib.shake_256(seed).digest(len(raw))
    out = bytes(b if c == _KEEP else _BASE_INT[c] + d % _SPAN_INT[c] for b, c, d in zip(raw, classes, draw))
    return out.decode("ascii"), changed


_BASE_INT = tuple(int(v) for v in _BASE)
_SPAN_INT = tuple(int(v) for v in _SPAN)

_BLOB_KEPT = np.zeros(256, dtype=bool)
_BLOB_KEPT[list(b"\x00\t\n\r\x0b\x0c ")] = True


def _redraw_bytes(blob: bytes, seed: bytes) -> bytes:
    """A BLOB of the same length: NUL and ASCII whitespace kept, digits redrawn as digits, the rest as letters."""
    if not blob:
        return blob
    codes = np.frombuffer(blob, dtype=np.uint8)
    draw = np.frombuffer(hashlib.shake_256(seed).digest(len(codes)), dtype=np.uint8)
    digit = (codes >= 48) & (codes <= 57)
    out = np.where(_BLOB_KEPT[codes], codes, np.where(digit, 48 + draw % 10, 97 + draw % 26)).astype(np.uint8)
    return out.tobytes()


def _split_ws(value: str) -> tuple[str, str, str]:
    core = value.strip()
    if not core:
        return value, "", ""
    start = value.index(core)
    return value[:start], core, value[start + len(core) :]


def _number_text(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


class Pseudonymizer:
    """Keyed, deterministic replacements for names and free text.

    Names go through one table shared by every column, so equal strings map to equal
    pseudonyms. ``prepare_names`` assigns them collision-free: no two originals share a
    pseudonym (a key column of usernames keeps its duplicates and only those) and no
    pseudonym equals any original name. Assignment visits names in sorted order, so the
    same names get the same pseudonyms in every run; only a name whose first candidate
    collided may differ between databases holding different sets of names.
    """

    def __init__(self, key: bytes, placeholder_tokens: Iterable[str], *, seed: int = 0) -> None:
        derive = lambda label: hmac.digest(key, b"servicedesk-etl/anonymize/" + label, "sha256")  # noqa: E731
        self._name_key = derive(b"name")
        self._text_key = derive(b"text")
        self._sample_key = derive(b"sample/" + str(seed).encode())
        self._placeholders = placeholder_set(placeholder_tokens)
        self._atoms: dict[str, str] = {}  # original atom -> pseudonym
        self._taken: set[str] = set()  # originals and pseudonyms issued: never issued again
        self._names: dict[str, str] = {}  # trimmed original value -> pseudonym (cache)
        self._values: dict[str, str] = {}  # stored value -> stored pseudonym (cache)

    @property
    def names_mapped(self) -> int:
        return len(self._atoms)

    # names ---------------------------------------------------------------------------

    @staticmethod
    def _atoms_of(core: str) -> list[str]:
        if _EMAIL.match(core):
            local, domain = core.split("@")
            labels = domain.split(".")
            return [local, *(label for label in (labels[:-1] if len(labels) > 1 else labels) if label)]
        return [core]

    def prepare_names(self, values: Iterable[Any]) -> None:
        """Assign pseudonyms to every name the output will hold, before writing any."""
        cores: set[str] = set()
        for value in values:
            core = self._name_core(value)
            if core is not None:
                cores.add(core)
        atoms = {atom for core in cores for atom in self._atoms_of(core)}
        self._taken |= cores | atoms
        for atom in sorted(atoms - self._atoms.keys()):
            self._assign(atom)

    def _name_core(self, value: Any) -> str | None:
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, (int, float)):
            return _number_text(value)
        if not isinstance(value, str) or is_placeholder(value, self._placeholders):
            return None
        core = value.strip()
        return core or None

    def _assign(self, atom: str) -> str:
        digits_only = _whole_kind(atom) in ("integer", "numeric")
        candidate = atom
        for attempt in range(1000):
            seed = hmac.digest(self._name_key, attempt.to_bytes(4, "big") + atom.encode("utf-8", "surrogatepass"), "sha256")
            candidate, changed = reshape(atom, seed, digits_only=digits_only)
            if not changed:
                break  # nothing to hide (punctuation only)
            if candidate not in self._taken and not is_placeholder(candidate, self._placeholders):
                break
            if attempt >= 100 and candidate != atom:
                # One-letter names run out of candidates: lengthen rather than collide.
                candidate = f"{candidate}{attempt}"
                if candidate not in self._taken:
                    break
        self._atoms[atom] = candidate
        self._taken.add(candidate)
        return candidate

    def _map_core(self, core: str) -> str:
        mapped = self._names.get(core)
        if mapped is not None:
            return mapped
        atom = lambda a: self._atoms.get(a) or self._assign(a)  # noqa: E731
        if _EMAIL.match(core):
            local, domain = core.split("@")
            labels = domain.split(".")
            head = labels[:-1] if len(labels) > 1 else labels
            tail = labels[-1:] if len(labels) > 1 else []
            mapped = atom(local) + "@" + ".".join([atom(lb) if lb else lb for lb in head] + tail)
        else:
            mapped = atom(core)
        self._names[core] = mapped
        return mapped

    def name(self, value: Any) -> Any:
        """The pseudonym of a name, username, e-mail address or client name (same storage class)."""
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, bytes):
            return _redraw_bytes(value, hmac.digest(self._name_key, b"blob\x00" + value, "sha256"))
        if isinstance(value, (int, float)):
            mapped = self._map_core(_number_text(value))
            try:
                return type(value)(mapped)
            except ValueError:  # inf, nan: no person in them
                return value
        cached = self._values.get(value)
        if cached is not None:
            return cached
        lead, core, trail = _split_ws(value)
        if not core or is_placeholder(value, self._placeholders) or _whole_kind(core) in _DATE_KINDS:
            mapped = value
        else:
            mapped = lead + self._map_core(core) + trail
        self._values[value] = mapped
        return mapped

    # free text -------------------------------------------------------------------------

    def text(self, value: Any) -> Any:
        """Pseudo-text of the same length and shape; numbers and BLOBs keep their class."""
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, bytes):
            return _redraw_bytes(value, hmac.digest(self._text_key, b"blob\x00" + value, "sha256"))
        if not value.strip() or is_placeholder(value, self._placeholders):
            return value
        kind = _whole_kind(value)
        if kind in _DATE_KINDS:
            return value
        return self._redraw_text(value, digits_only=kind in _NON_TEXT_KINDS)

    def loose(self, value: Any) -> Any:
        """An undeclared column: pseudo-text unless the value is wholly a number or a date."""
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, bytes):
            return self.text(value)
        if _whole_kind(value) in _NON_TEXT_KINDS:
            return value
        return self.text(value)

    def _redraw_text(self, value: str, *, digits_only: bool) -> str:
        raw = value.encode("utf-8", "surrogatepass")
        out = value
        for attempt in range(16):
            seed = hmac.digest(self._text_key, attempt.to_bytes(4, "big") + raw, "sha256")
            out, changed = reshape(value, seed, digits_only=digits_only)
            if not changed:
                return value
            if out != value and not is_placeholder(out, self._placeholders):
                return out
        return out

    # sampling --------------------------------------------------------------------------

    def unit(self, *parts: Any) -> float:
        """A keyed, uniform number in [0, 1) for a sampling unit (a ticket id, a row key)."""
        digest = hmac.digest(self._sample_key, repr(parts).encode("utf-8", "surrogatepass"), "sha256")
        return int.from_bytes(digest[:8], "big") / 2**64


# --- which columns, which rows ---------------------------------------------------------------


def column_policy(table: str, column: str) -> str:
    """KEEP, NAME, TEXT or LOOSE for one column, from the contracts."""
    schema = contract_for(table)
    if schema is None or column not in schema.columns:
        return LOOSE
    col = schema.columns[column]
    if is_long_text(col) or column in EXTRA_TEXT_COLUMNS.get(table, ()):
        return TEXT
    if is_personal(col) or column in EXTRA_NAME_COLUMNS.get(table, ()):
        return NAME
    return KEEP


def all_placeholder_tokens(settings: Settings) -> tuple[str, ...]:
    tokens = list(settings.placeholder_tokens)
    for schema in REGISTRY.values():
        for col in schema.columns.values():
            tokens.extend(placeholders(col))
    for per_column in settings.column_placeholders.values():
        for extra in per_column.values():
            tokens.extend(extra)
    return tuple(dict.fromkeys(tokens))


def _norm(value: Any) -> Any:
    """A reference or key value as the pipeline will read it (``3652948.0`` is ``3652948``)."""
    if value is None or isinstance(value, bytes):
        return value
    number = to_integer(value)
    if number is not None:
        return number
    return value.strip() if isinstance(value, str) else value


@dataclass
class _Child:
    """A table whose rows refer to a sampled parent table."""

    table: str
    parent: str
    ref: str
    key: tuple[str, ...]
    forced_keys: set = field(default_factory=set)


@dataclass
class _Parent:
    table: str
    column: str
    ids: set = field(default_factory=set)
    forced: set = field(default_factory=set)
    children: list[_Child] = field(default_factory=list)


class SamplePlan:
    """Which rows a ``--fraction`` sample keeps; decided from the contracts' references.

    A parent row (a ticket) is kept when the keyed hash of its id falls under the
    fraction. A child row (comment, timesheet) whose reference names an existing parent
    follows that parent; a child whose reference names none (an orphan, admin time) is
    kept by the hash of its own key. Rows sharing a key go together: when a kept
    duplicate group also names an unkept parent, that parent is pulled in (and its
    children with it) until nothing changes.
    """

    def __init__(self, conn: sqlite3.Connection, tables: Sequence[str], pseudo: Pseudonymizer, fraction: float) -> None:
        self.fraction = fraction
        self.pseudo = pseudo
        self.parents: dict[str, _Parent] = {}
        self.children: dict[str, _Child] = {}
        present = set(tables)
        for table in tables:
            schema = contract_for(table)
            if schema is None:
                continue
            cols = {c for c, _ in _columns(conn, table)}
            for ref in facts(schema).references:
                target = contract_for(ref.target_table)
                if (
                    ref.target_table not in present
                    or ref.column not in cols
                    or target is None
                    or tuple(facts(target).key) != (ref.target_column,)
                    or table in self.children
                ):
                    continue
                key = tuple(k for k in facts(schema).key if k in cols)
                parent = self.parents.setdefault(ref.target_table, _Parent(ref.target_table, ref.target_column))
                child = _Child(table, ref.target_table, ref.column, key)
                parent.children.append(child)
                self.children[table] = child
        for parent in self.parents.values():
            t, c = quote_sqlite(parent.table), quote_sqlite(parent.column)
            for (value,) in conn.execute(f"SELECT DISTINCT {c} FROM src.{t}"):
                parent.ids.add(_norm(value))
        self._close_duplicates(conn)

    def keep_parent(self, parent: _Parent, ident: Any) -> bool:
        return ident in parent.forced or self.pseudo.unit(parent.table, ident) < self.fraction

    def keep_child(self, child: _Child, ref: Any, key: tuple) -> bool:
        parent = self.parents[child.parent]
        if key in child.forced_keys:
            return True
        if ref in parent.ids:
            return self.keep_parent(parent, ref)
        return self.pseudo.unit(child.table, *key) < self.fraction

    def _close_duplicates(self, conn: sqlite3.Connection) -> None:
        groups: list[tuple[_Child, tuple, list[Any]]] = []
        for child in self.children.values():
            if not child.key:
                continue
            t = quote_sqlite(child.table)
            keys = ", ".join(quote_sqlite(k) for k in child.key)
            sql = (
                f"SELECT {keys}, {quote_sqlite(child.ref)} FROM src.{t} WHERE ({keys}) IN "
                f"(SELECT {keys} FROM src.{t} GROUP BY {keys} HAVING count(*) > 1)"
            )
            by_key: dict[tuple, list[Any]] = {}
            for row in conn.execute(sql):
                by_key.setdefault(tuple(_norm(v) for v in row[:-1]), []).append(_norm(row[-1]))
            groups.extend((child, key, refs) for key, refs in by_key.items())
        changed = True
        while changed:
            changed = False
            for child, key, refs in groups:
                if key in child.forced_keys:
                    kept = True
                else:
                    kept = any(self.keep_child(child, ref, key) for ref in refs)
                if not kept:
                    continue
                if key not in child.forced_keys:
                    child.forced_keys.add(key)
                    changed = True
                parent = self.parents[child.parent]
                for ref in refs:
                    if ref in parent.ids and not self.keep_parent(parent, ref):
                        parent.forced.add(ref)
                        changed = True

    def row_filter(self, table: str) -> tuple[str, list[str], Callable[..., int]] | None:
        """(SQL function name, argument columns, function) deciding a row, or None: keep all."""
        if table in self.parents:
            parent = self.parents[table]
            return "anon_keep_parent", [parent.column], lambda ident: int(self.keep_parent(parent, _norm(ident)))
        if table in self.children:
            child = self.children[table]

            def keep(ref: Any, *key: Any) -> int:
                return int(self.keep_child(child, _norm(ref), tuple(_norm(k) for k in key)))

            return "anon_keep_child", [child.ref, *child.key], keep
        return None


# --- the stage ------------------------------------------------------------------------------------


def _columns(conn: sqlite3.Connection, table: str) -> list[tuple[str, str]]:
    return [(r[1], r[2] or "") for r in conn.execute(f"PRAGMA src.table_info({quote_sqlite(table)})")]


def _source_tables(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT name, sql FROM src.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
    ).fetchall()
    return [(name, sql) for name, sql in rows]


def _text_arg(column: str) -> str:
    # Text goes to Python as bytes: invalid UTF-8 from odd exports must not abort the copy.
    q = quote_sqlite(column)
    return f"typeof({q}), CASE typeof({q}) WHEN 'text' THEN CAST({q} AS BLOB) ELSE {q} END"


def _wrap(fn: Callable[[Any], Any]) -> Callable[[str, Any], Any]:
    def call(storage: str, value: Any) -> Any:
        if storage == "text":
            value = value.decode("utf-8", "replace")
        return fn(value)

    return call


def _check_paths(config: AnonymizeConfig) -> tuple[Path, Path]:
    if not 0.0 < config.fraction <= 1.0:
        raise ConfigError(f"--fraction {config.fraction} is not within (0, 1]", "give a share such as 0.1 (10% of tickets) or 1 (all rows)")
    source = check_sqlite_file(config.source, "--source")
    out = Path(config.out)
    if out.resolve() == source.resolve() or (out.exists() and os.path.samefile(out, source)):
        raise InputFileError(f"--out {out} is the source database", "write the anonymised copy to another file")
    if out.is_dir():
        raise InputFileError(f"--out {out} is a folder", "give a file name, e.g. sample.db")
    return source, out


def run(config: AnonymizeConfig) -> AnonymizeResult:
    """Write an anonymised (and optionally sampled) copy of ``config.source`` to ``config.out``."""
    started = time.monotonic()
    source, out = _check_paths(config)
    key, key_path, generated = load_or_create_key(config.key_file)
    pseudo = Pseudonymizer(key, all_placeholder_tokens(config.settings), seed=config.seed)
    del key
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    samples: list[TableSample] = []
    with stage_trace("anonymize") as trace:
        try:
            conn = sqlite3.connect(str(tmp), isolation_level=None, uri=True)
            try:
                samples = _write(conn, source, pseudo, config.fraction)
            finally:
                conn.close()
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, out)
        except sqlite3.DatabaseError as exc:
            text = str(exc)
            if "disk is full" in text:
                raise ResourceExhausted(
                    f"writing {out} failed: {text}", f"free space in {out.parent.resolve()} (the copy needs about the source's size), then run again"
                ) from None
            if "user-defined function raised exception" in text:
                raise  # a bug in this module, not bad input: let the CLI report it as one
            raise InputFileError(f"--source {source} cannot be read as SQLite: {text}", "check that the file is not truncated or still being written") from None
        finally:
            tmp.unlink(missing_ok=True)
        trace.rows = sum(s.rows_written for s in samples)
        trace.fields.update({"fraction": config.fraction, "tables": len(samples), "pseudonyms": pseudo.names_mapped})
    return AnonymizeResult(
        out=out,
        key_file=key_path,
        key_generated=generated,
        fraction=config.fraction,
        tables=tuple(samples),
        pseudonyms=pseudo.names_mapped,
        seconds=round(time.monotonic() - started, 3),
    )


def _write(conn: sqlite3.Connection, source: Path, pseudo: Pseudonymizer, fraction: float) -> list[TableSample]:
    # The output is a temporary file renamed only on success: no journal needed.
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("ATTACH DATABASE ? AS src", (f"file:{urllib.parse.quote(source.resolve().as_posix())}?mode=ro",))
    tables = _source_tables(conn)
    policies = {name: {col: column_policy(name, col) for col, _ in _columns(conn, name)} for name, _ in tables}

    # Every name first, so pseudonyms do not depend on the order rows arrive in.
    def names() -> Iterable[Any]:
        for table, cols in policies.items():
            for col, policy in cols.items():
                if policy != NAME:
                    continue
                sql = f"SELECT DISTINCT {_text_arg(col)} FROM src.{quote_sqlite(table)}"
                for storage, value in conn.execute(sql):
                    yield value.decode("utf-8", "replace") if storage == "text" else value

    pseudo.prepare_names(names())
    conn.create_function("anon_name", 2, _wrap(pseudo.name))
    conn.create_function("anon_text", 2, _wrap(pseudo.text))
    conn.create_function("anon_loose", 2, _wrap(pseudo.loose))
    plan = SamplePlan(conn, [t for t, _ in tables], pseudo, fraction) if fraction < 1.0 else None

    samples = []
    conn.execute("BEGIN")
    for table, create_sql in tables:
        if create_sql is None or create_sql.upper().startswith("CREATE VIRTUAL"):
            log.warning("table skipped: virtual tables are not copied", extra={"table": table})
            continue
        # The source's own CREATE statement: the same columns, declared types and
        # constraints, so SQLite applies the same affinities and classes stay as they were.
        conn.execute(create_sql)
        cols = policies[table]
        exprs = []
        for col, policy in cols.items():
            exprs.append(quote_sqlite(col) if policy == KEEP else f"anon_{policy}({_text_arg(col)})")
        t = quote_sqlite(table)
        rows_read = conn.execute(f"SELECT count(*) FROM src.{t}").fetchone()[0]
        progress = Progress(f"anonymize {table}", rows_read)

        def tick() -> int:
            progress.advance(1)
            return 1

        conn.create_function("anon_tick", 0, tick)
        where = "anon_tick()"
        rule = plan.row_filter(table) if plan else None
        if rule is not None:
            fn_name, arg_cols, fn = rule
            conn.create_function(fn_name, len(arg_cols), fn)
            where += f" AND {fn_name}({', '.join(quote_sqlite(c) for c in arg_cols)})"
        order = "" if "WITHOUT ROWID" in create_sql.upper() else " ORDER BY rowid"
        names_sql = ", ".join(quote_sqlite(c) for c in cols)
        cur = conn.execute(
            f"INSERT INTO main.{t} ({names_sql}) SELECT {', '.join(exprs)} FROM src.{t} WHERE {where}{order}"
        )
        progress.close()
        written = cur.rowcount
        replaced = tuple(c for c, p in cols.items() if p != KEEP)
        samples.append(TableSample(table, rows_read, written, replaced))
        log.info(
            "table anonymised",
            extra={"table": table, "rows_read": rows_read, "rows_written": written, "columns_replaced": len(replaced)},
        )
    for (index_sql,) in conn.execute(
        "SELECT sql FROM src.sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY rowid"
    ).fetchall():
        conn.execute(index_sql)
    conn.execute("COMMIT")
    conn.execute("DETACH DATABASE src")
    return samples


# --- CLI glue -----------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, type=Path, help="the SQLite database to anonymise (opened read-only)")
    parser.add_argument("--out", required=True, type=Path, help="the anonymised database to write (replaced atomically)")
    parser.add_argument(
        "--fraction", type=float, default=1.0, help="share of tickets to keep, with their comments and timesheets (default 1: all)"
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        default=None,
        help=f"the pseudonym key (default {DEFAULT_KEY_FILE}, created when absent); keep it private",
    )
    parser.add_argument("--seed", type=int, default=0, help="draw a different sample at the same fraction (pseudonyms do not change)")


def command(args: argparse.Namespace, settings: Settings) -> int:
    result = run(
        AnonymizeConfig(
            source=args.source,
            out=args.out,
            fraction=args.fraction,
            key_file=args.key_file,
            seed=args.seed,
            settings=settings,
        )
    )
    print(f"wrote {result.out} ({result.seconds:.1f} s, {result.pseudonyms} names pseudonymised)")
    for t in result.tables:
        replaced = f", {len(t.pseudonymized)} columns replaced" if t.pseudonymized else ""
        print(f"  {t.table:<20} {t.rows_written:>9,} of {t.rows_read:>9,} rows{replaced}")
    if result.key_generated:
        print(f"new key generated: {result.key_file} (keep it private; reuse it for the same pseudonyms)")
    else:
        print(f"key: {result.key_file}")
    return 0
