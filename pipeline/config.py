"""Configuration: one TOML file, validated key by key, into frozen dataclasses.

Precedence (highest first): command-line flags, the config file, built-in defaults.
Environment variables are read only where the file says nothing: ``PG*`` and
``SERVICEDESK_TARGET`` for the target (documented in the README); they never override
a value given in the file or on the command line.

Unknown keys and wrong types are errors naming the key's path and the expected type.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Mapping

from pipeline.errors import ConfigError

DEFAULT_PLACEHOLDERS = (
    "--None--",
    "PendingAssignment",
    "N/A",
    "n/a",
    "NA",
    "#N/A",
    "?",
    "-",
    "--",
    "null",
    "NULL",
    "None",
)


@dataclass(frozen=True)
class Scoping:
    """Which rows to keep at ingest; everything off by default."""

    cutoff: date | None = None  # comments and timesheets before this date are dropped
    roster: tuple[str, ...] = ()  # usernames: keep tickets a roster member commented on
    roster_file: str | None = None  # XLSX/CSV with name, email, username


@dataclass(frozen=True)
class ProfileSettings:
    sample_size: int = 5000
    full: bool = False
    type_confidence: float = 0.95
    max_corrupt_date_share: float = 0.20  # circuit breaker: over this in a column -> FIX_SOURCE
    max_mismatched_column_share: float = 0.10  # over this share of columns -> FIX_SOURCE
    example_keys: int = 5


@dataclass(frozen=True)
class GateSettings:
    quality_threshold: float = 80.0
    sample_rows: int = 10  # failure rows shown per check
    show_personal: bool = False  # show comment text and names in failure samples
    chunk_rows: int = 50_000


@dataclass(frozen=True)
class CleanSettings:
    fix_dates: bool = True
    null_unparseable_dates: bool = False  # False: the row goes to quarantine instead
    null_empty_strings: bool = True
    null_placeholders: bool = True
    text_columns_empty_to_null: bool = False
    fix_numbers: bool = True
    text_hygiene: bool = True
    max_blank_lines: int = 2
    duplicates: str = "keep_latest"  # keep_latest | keep_first | fail
    out_of_range: str = "quarantine"  # quarantine | cap
    batch_rows: int = 10_000
    # table -> keep_latest | keep_first | fail, overriding `duplicates` for that table
    duplicates_by_table: dict[str, str] = field(default_factory=dict)
    health_check_rows: int = 10_000  # free disk, memory, output writable: checked this often
    min_free_disk_mb: int = 64  # stop (ResourceExhausted) when the output's disk has less
    max_memory_mb: int = 2048  # stop when this process's resident memory grows past it


@dataclass(frozen=True)
class MigrateSettings:
    schema: str = "servicedesk"
    canary: bool = True
    canary_fraction: float = 0.10
    keep_versions: int = 3
    readonly_role: str = "servicedesk_reader"
    on_error: str = "reject"  # reject (to the reject table) | stop
    tolerated_rejects: int = 0
    batch_rows: int = 10_000


@dataclass(frozen=True)
class Retention:
    operational_days: int = 7
    archival_days: int = 30


@dataclass(frozen=True)
class Settings:
    """Everything a run can be told, with the defaults of this service desk."""

    date_locale: str = "day-first"  # day-first | month-first: for ambiguous slash dates
    placeholder_tokens: tuple[str, ...] = DEFAULT_PLACEHOLDERS
    # table -> column -> extra placeholder tokens (beyond the contract's own)
    column_placeholders: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    # table -> workbook header -> column, on top of contracts/headers.toml
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    scoping: Scoping = Scoping()
    profile: ProfileSettings = ProfileSettings()
    gate: GateSettings = GateSettings()
    clean: CleanSettings = CleanSettings()
    migrate: MigrateSettings = MigrateSettings()
    retention: Retention = Retention()
    target: str | None = None  # PostgreSQL URI; None: the embedded server

    def with_overrides(self, **changes: Any) -> "Settings":
        """A copy with dotted keys replaced, e.g. ``{"gate.quality_threshold": 90}``."""
        return _replace_dotted(self, changes)


_ENUMS: dict[str, tuple[str, ...]] = {
    "date_locale": ("day-first", "month-first"),
    "clean.duplicates": ("keep_latest", "keep_first", "fail"),
    "clean.out_of_range": ("quarantine", "cap"),
    "migrate.on_error": ("reject", "stop"),
}


def load_settings(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read the config file (if any), then apply command-line overrides (dotted keys)."""
    settings = Settings()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(
                f"config file {p} does not exist",
                "pass the path of a TOML file, or drop --config to use the defaults",
            )
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}", "fix the syntax at the place named") from None
        settings = _build(Settings, data, "")
    if overrides:
        settings = settings.with_overrides(**{k: v for k, v in overrides.items() if v is not None})
    _check_enums(settings)
    return settings


def _check_enums(settings: Settings) -> None:
    for dotted, allowed in _ENUMS.items():
        value: Any = settings
        for part in dotted.split("."):
            value = getattr(value, part)
        if value not in allowed:
            raise ConfigError(f"config key {dotted} = {value!r} is not one of {', '.join(allowed)}", "use one of the values listed")


def _build(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"config key {path or '<root>'} must be a table", f"write [{path}] as a TOML table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        if key not in known:
            raise ConfigError(
                f"unknown config key {where}",
                f"known keys here: {', '.join(sorted(known))}",
            )
        kwargs[key] = _coerce(hints[key], value, where)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(non_none[0], value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"config key {where} must be a list", f"write {where} = [ ... ]")
        return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {where} must be a table", f"write [{where}] as a TOML table")
        return {str(k): _coerce(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {where} must be a number, not {value!r}", "write a number")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {where} must be a whole number, not {value!r}", "write a whole number")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {where} must be true or false, not {value!r}", "write true or false")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {where} must be a string, not {value!r}", "quote the value")
        return value
    if hint is date:
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise ConfigError(f"config key {where} must be a date (YYYY-MM-DD), not {value!r}", "write e.g. 2025-07-01")
    raise ConfigError(f"config key {where}: unsupported type {hint}", "")  # pragma: no cover


def _replace_dotted(obj: Any, changes: Mapping[str, Any]) -> Any:
    direct: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if head not in names:
            raise ConfigError(f"unknown setting {key}", f"known: {', '.join(sorted(names))}")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, sub in nested.items():
        direct[head] = _replace_dotted(getattr(obj, head), sub)
    return dataclasses.replace(obj, **direct)


def dump_toml(settings: Settings) -> str:
    """The settings as a TOML file that ``load_settings`` reads back to the same value.

    Lets a stage hand its exact settings to a child pytest run (the contract gate),
    which reads configuration from a file only.
    """
    lines: list[str] = []
    tables: list[tuple[str, Any]] = []
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value) or isinstance(value, dict):
            tables.append((f.name, value))
        elif value is not None:
            lines.append(f"{f.name} = {_toml_value(value)}")
    for name, value in tables:
        _dump_table(name, value, lines)
    return "\n".join(lines) + "\n"


def _dump_table(path: str, value: Any, lines: list[str]) -> None:
    items = (
        [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
        if dataclasses.is_dataclass(value)
        else list(value.items())
    )
    scalars = [(k, v) for k, v in items if not (dataclasses.is_dataclass(v) or isinstance(v, dict))]
    nested = [(k, v) for k, v in items if dataclasses.is_dataclass(v) or isinstance(v, dict)]
    lines.append(f"\n[{path}]")
    for key, v in scalars:
        if v is not None:
            lines.append(f"{_toml_key(key)} = {_toml_value(v)}")
    for key, v in nested:
        _dump_table(f"{path}.{_toml_key(key)}", v, lines)


def _toml_key(key: str) -> str:
    import re

    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _toml_value(value: Any) -> str:
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(str(value))
