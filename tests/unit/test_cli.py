"""The command line: every subcommand exists, answers --help, and errors are one line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from pipeline.cli import COMMANDS, main


def test_every_command_module_exists():
    missing = [name for name, (module, _) in COMMANDS.items() if importlib.util.find_spec(module) is None]
    assert missing == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_of_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: servicedesk-etl " + command in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_python_dash_m_runs_the_same_cli():
    done = subprocess.run([sys.executable, "-m", "pipeline", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and "servicedesk-etl" in done.stdout


def test_bad_config_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "etl.toml"
    bad.write_text("[gate]\nquality_threshold = 'high'\n")
    code = main(["--config", str(bad), "profile", "--source", str(tmp_path / "x.db")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: config key gate.quality_threshold must be a number")
    assert "Traceback" not in err
