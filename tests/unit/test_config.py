"""The configuration file: every key documented in etl.example.toml, bad keys refused."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import pytest

from pipeline.config import Settings, load_settings
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "etl.toml"
    p.write_text(text)
    return p


def test_example_file_loads_and_equals_defaults():
    s = load_settings(ROOT / "etl.example.toml")
    # The example shows the per-table sections empty (commented entries only).
    assert all(not v for v in s.column_placeholders.values())
    assert all(not v for v in s.headers.values())
    assert dataclasses.replace(s, column_placeholders={}, headers={}) == Settings()


def test_values_are_read(tmp_path):
    s = load_settings(write(tmp_path, 'date_locale = "month-first"\n[gate]\nquality_threshold = 90\n[scoping]\ncutoff = 2025-07-01\nroster = ["a", "b"]\n'))
    assert s.date_locale == "month-first"
    assert s.gate.quality_threshold == 90.0
    assert s.scoping.cutoff == date(2025, 7, 1)
    assert s.scoping.roster == ("a", "b")


@pytest.mark.parametrize(
    "text, path_in_message",
    [
        ("colour = 1\n", "colour"),
        ("[gate]\nquality_treshold = 80\n", "gate.quality_treshold"),
        ('[gate]\nquality_threshold = "high"\n', "gate.quality_threshold"),
        ("[profile]\nsample_size = 1.5\n", "profile.sample_size"),
        ('[clean]\nduplicates = "newest"\n', "clean.duplicates"),
        ("[scoping]\ncutoff = \"July\"\n", "scoping.cutoff"),
        ("placeholder_tokens = \"--None--\"\n", "placeholder_tokens"),
        ("[headers.comments]\n\"X\" = 3\n", "headers.comments.X"),
    ],
)
def test_bad_keys_name_their_path(tmp_path, text, path_in_message):
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text))
    assert path_in_message in str(err.value)


def test_invalid_toml_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[gate\n"))


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_flags_override_the_file(tmp_path):
    p = write(tmp_path, "[gate]\nquality_threshold = 90\n")
    s = load_settings(p, {"gate.quality_threshold": 70.0, "migrate.schema": None})
    assert s.gate.quality_threshold == 70.0
    assert s.migrate.schema == "servicedesk"  # None means "flag not given"


def test_unknown_override_is_refused():
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings().with_overrides(**{"gate.nope": 1})


def test_dump_toml_round_trips(tmp_path):
    from pipeline.config import dump_toml

    s = Settings().with_overrides(
        **{
            "date_locale": "month-first",
            "gate.quality_threshold": 91.5,
            "scoping.cutoff": date(2025, 7, 1),
            "scoping.roster": ("a", 'b"q'),
            "headers": {"comments": {"CT3 Comment #ID": "comment_id"}},
            "column_placeholders": {"tickets": {"TKT-Client Name": ("Unknown", "\\none")}},
            "target": "postgresql://etl@db/servicedesk",
        }
    )
    p = tmp_path / "dumped.toml"
    p.write_text(dump_toml(s))
    assert load_settings(p) == s
    assert load_settings(write(tmp_path, dump_toml(Settings()))) == Settings()
