"""Workbook header mappings (data in ``headers.toml``, extendable from the config file)."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from typing import Mapping


@lru_cache(maxsize=1)
def default_mappings() -> dict[str, dict[str, str]]:
    text = resources.files("contracts").joinpath("headers.toml").read_text(encoding="utf-8")
    return {table: dict(mapping) for table, mapping in tomllib.loads(text).items()}


def mapping_for(table: str, extra: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, str]:
    """Header -> column for one table: the shipped mappings, then the config's on top."""
    merged = dict(default_mappings().get(table, {}))
    if extra and table in extra:
        merged.update(extra[table])
    return merged
