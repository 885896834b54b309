"""pipeline.child: a function called in a new Python process."""

from __future__ import annotations

import os
import signal
import time
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


def test_arguments_sent_later_reach_a_child_that_imported_its_modules_meanwhile() -> None:
    with SpawnedCall("sys:getrecursionlimit", deferred=True, preload=("json",)) as call:
        with pytest.raises(RuntimeError, match="before its arguments"):
            call.result()
        call.send()
        assert call.result() > 0
        with pytest.raises(RuntimeError, match="already sent"):
            call.send()


def test_a_module_that_cannot_be_imported_is_reported_as_the_callers_error() -> None:
    with SpawnedCall("pipeline.no_such_module:run") as call:
        with pytest.raises(ModuleNotFoundError):
            call.result()


def test_the_child_dies_with_its_caller(tmp_path: Path) -> None:
    """SIGKILL of the caller kills a child in the middle of its call (PR_SET_PDEATHSIG)."""
    import subprocess
    import sys

    import psutil

    marker = tmp_path / "calling"
    # The child's call runs a shell that marks the moment the call is under way.
    script = (
        "from pipeline.child import SpawnedCall\n"
        f"with SpawnedCall('subprocess:call', ['sh', '-c', 'touch {marker}; exec sleep 600']) as call:\n"
        "    print(call.child.pid, flush=True)\n"
        "    call.result()"
    )
    caller = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert caller.stdout is not None
    child = psutil.Process(int(caller.stdout.readline()))
    shell: list[psutil.Process] = []
    try:
        for _ in range(600):
            if marker.exists():
                break
            time.sleep(0.05)
        assert marker.exists(), "the call never started"
        shell = child.children()
        caller.kill()
        caller.wait()
        gone, alive = psutil.wait_procs([child], timeout=60)
        assert not alive, "the child outlived its caller"
    finally:
        for process in [child, *shell]:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass


def test_a_forked_child_sends_its_answers_one_by_one() -> None:
    """``fork_answers``: each answer can be read while the child goes on with the next."""
    from pipeline.child import fork_answers, read_answer

    def answers(send):
        send(b"first")
        time.sleep(0.2)
        send(b"")
        send(b"x" * 200_000)  # more than a pipe holds

    pid, pipe = fork_answers(answers)
    try:
        assert read_answer(pipe) == b"first"
        assert read_answer(pipe) == b""
        assert read_answer(pipe) == b"x" * 200_000
        assert read_answer(pipe) is None  # no more
    finally:
        pipe.close()
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_forked_child_that_fails_between_answers_sends_no_more() -> None:
    from pipeline.child import fork_answers, read_answer

    def answers(send):
        send(b"built")
        raise RuntimeError("stopped")

    pid, pipe = fork_answers(answers)
    try:
        assert read_answer(pipe) == b"built"
        assert read_answer(pipe) is None
    finally:
        pipe.close()
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1
