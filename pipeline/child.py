"""A function called in a new Python process, for work that must not share this one.

The migration's contract run is pytest in a process: it changes the working folder,
``sys.stdout`` and environment variables, which threads of the caller opening libpq
connections at the same moment must never see. In a child of its own it runs beside
them (the checksums, the dashboard queries) on the other core.

``SpawnedCall("package.module:function", *args)`` starts ``python -c`` (never a fork: the
caller runs threads) that imports the module and calls the function; the arguments go
pickled on the child's stdin and its answer (the value, or the exception it raised) comes
back pickled on its stdout. The child dies with the caller (Linux: PR_SET_PDEATHSIG; the
"parent" there is the thread that started it, so start and wait in the same thread), so
a killed migration leaves no contract run behind, and leaving the ``with`` block kills a
child whose answer is no longer wanted.
"""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
import tempfile
from typing import Any


def die_with_parent() -> None:
    """This process gets SIGKILL when its parent dies (Linux; elsewhere nothing)."""
    import signal

    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


class ChildFailed(RuntimeError):
    """The child process ended without an answer (killed, crashed)."""


class SpawnedCall:
    """``function(*args)`` in a new Python process; ``result()`` waits for its answer."""

    def __init__(self, function: str, *args: Any) -> None:
        self.request = pickle.dumps((os.getpid(), function, args))
        self.function = function

    def __enter__(self) -> "SpawnedCall":
        self.errors = tempfile.TemporaryFile()  # a file, not a pipe: the child never blocks on it
        try:
            self.child = subprocess.Popen(
                [sys.executable, "-c", "from pipeline.child import _main; _main()"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.errors,
            )
        except BaseException:
            self.errors.close()  # __exit__ does not run when __enter__ fails
            raise
        assert self.child.stdin is not None
        try:
            self.child.stdin.write(self.request)
            self.child.stdin.close()
        except BrokenPipeError:  # died at once: result() reports it
            pass
        return self

    def result(self) -> Any:
        """The function's value; the exception it raised is raised here."""
        assert self.child.stdout is not None
        out = self.child.stdout.read()
        code = self.child.wait()
        if code != 0 or not out:
            self.errors.seek(0)
            tail = self.errors.read().decode("utf-8", errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise ChildFailed(f"{self.function} stopped in its child process (exit code {code}): {tail[0]}")
        status, payload = pickle.loads(out)
        if status != "ok":
            raise payload
        return payload

    def __exit__(self, *exc: Any) -> None:
        if self.child.poll() is None:
            self.child.kill()
            self.child.wait()
        if self.child.stdout is not None:
            self.child.stdout.close()
        self.errors.close()


def _main() -> None:
    """The child: (function, args) pickled on stdin; ("ok", value) or ("error", exception)
    pickled on stdout."""
    die_with_parent()
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print cannot corrupt the answer
    parent, function, args = pickle.load(sys.stdin.buffer)
    if os.getppid() != parent:  # the caller died before die_with_parent() took effect
        sys.exit(1)
    try:
        module, _, name = function.partition(":")
        payload: tuple[str, Any] = ("ok", getattr(importlib.import_module(module), name)(*args))
    except Exception as exc:  # noqa: BLE001 - raised again in the caller
        payload = ("error", exc)
    try:
        data = pickle.dumps(payload)
    except Exception as exc:  # noqa: BLE001 - a value or an exception that cannot be pickled
        data = pickle.dumps(("error", ChildFailed(f"{function}: {type(payload[1]).__name__}: {payload[1]} (cannot be pickled: {exc})")))
    answer.write(data)
    answer.close()
