"""pipeline.child: a function called in a new Python process."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pipeline.child import ChildFailed, SpawnedCall
from pipeline.errors import ConfigError


def test_the_value_comes_back_from_another_process() -> None:
    with SpawnedCall("os:getpid") as call:
        pid = call.result()
    assert isinstance(pid, int) and pid != os.getpid()


def test_an_error_of_the_pipeline_is_raised_again_with_its_remedy() -> None:
    with SpawnedCall("pipeline.config:load_settings", Path("/nonexistent/etl.toml")) as call:
        with pytest.raises(ConfigError) as info:
            call.result()
    assert "does not exist" in info.value.message and info.value.remedy and info.value.exit_code == 2


def test_a_child_that_dies_without_an_answer_is_reported() -> None:
    with SpawnedCall("os:_exit", 3) as call:
        with pytest.raises(ChildFailed, match="exit code 3"):
            call.result()


def test_leaving_the_block_kills_a_child_still_running() -> None:
    with SpawnedCall("time:sleep", 60) as call:
        child = call.child
    assert child.returncode == -signal.SIGKILL  # killed, not waited for
