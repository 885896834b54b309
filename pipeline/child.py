"""A function called in a new Python process, for work that must not share this one.

The migration's contract run is pytest in a process: it changes the working folder,
``sys.stdout`` and environment variables, which threads of the caller opening libpq
connections at the same moment must never see. In a child of its own it runs beside
them (the checksums, the dashboard queries) on the other core.

``SpawnedCall("package.module:function", *args)`` starts ``python -c`` (never a fork: the
caller runs threads) that imports the module and calls the function; the arguments go
pickled on the child's stdin and its answer (the value, or the exception it raised) comes
back pickled on its stdout. Started early without its arguments (``deferred``), the
child imports its module meanwhile: the gate's imports (pandas, pandera, pytest) cost
about a second a new Python would otherwise spend after the caller asked. The child dies with the caller (Linux: PR_SET_PDEATHSIG; the
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
from typing import Any, BinaryIO, Callable

# Fork where it is the platform's way (Linux); macOS' system libraries are not fork-safe.
CAN_FORK = hasattr(os, "fork") and sys.platform == "linux"


def die_with_parent() -> None:
    """This process gets SIGKILL when its parent dies (Linux; elsewhere nothing)."""
    import signal

    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def alone() -> bool:
    """No other thread in this process but those marked ``fork_safe = True`` (a
    ``threading.Thread`` attribute their starter sets: threads that take no lock a child
    could need, e.g. one in ``os.fsync``): a fork is safe. A fork copies the locks other
    threads hold at that moment, never released in the child: a thread inside SQLite (its
    memory mutex) left a forked checker waiting forever (the clean's orphan counts in a
    thread, at 1M rows)."""
    import threading

    current = threading.current_thread()
    return all(t is current or getattr(t, "fork_safe", False) is True for t in threading.enumerate())


def picklable_error(error: BaseException | None) -> BaseException | None:
    """``error`` when it crosses a process boundary as it is, else a RuntimeError with its text."""
    if error is None:
        return None
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - its text, then
        return RuntimeError(f"{type(error).__name__}: {error}")


def fork_answer(answer: Callable[[], bytes], errors: int | None = None) -> tuple[int, BinaryIO]:
    """Fork a child that writes ``answer()`` to a pipe: (its pid, the pipe's read end).

    The child leaves by ``os._exit``: none of the caller's ``finally`` blocks, atexit
    handlers or finalizers run in it; ``gc.freeze`` keeps the caller's objects out of its
    collections, and it dies with the caller. ``errors``: a file descriptor that becomes
    its stderr and stdout (a stray print cannot reach the caller's terminal), where an
    exception's traceback goes. A child that fails exits 1 without an answer. Fork
    only where ``alone()`` holds: no thread of the caller holds a lock the child needs.
    """

    def write_all(write: int) -> None:
        data = answer()
        with os.fdopen(write, "wb") as out:
            out.write(data)

    return _fork(write_all, errors)


def fork_answers(answers: Callable[[Callable[[bytes], None]], None], errors: int | None = None) -> tuple[int, BinaryIO]:
    """``fork_answer`` for a child with more than one answer, each ready at its own time:
    ``answers(send)`` calls ``send(data)`` for each; the caller reads them in order with
    ``read_answer`` while the child goes on with the next."""

    def framed(write: int) -> None:
        with os.fdopen(write, "wb") as out:

            def send(data: bytes) -> None:
                out.write(len(data).to_bytes(8, "big"))
                out.write(data)
                out.flush()  # every byte written (a buffered writer retries short writes), now

            answers(send)

    return _fork(framed, errors)


def read_answer(pipe: BinaryIO) -> bytes | None:
    """The next answer of a ``fork_answers`` child, or None where it ended without one
    (failed, killed) or sent no more."""
    head = pipe.read(8)
    if len(head) < 8:
        return None
    size = int.from_bytes(head, "big")
    data = pipe.read(size)
    return data if len(data) == size else None


def _fork(body: Callable[[int], None], errors: int | None) -> tuple[int, BinaryIO]:
    """A forked child running ``body(write end of a pipe)``: (its pid, the read end)."""
    import gc

    read, write = os.pipe()
    try:
        pid = os.fork()
    except BaseException:
        os.close(read)
        os.close(write)
        raise
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.close(read)
            gc.freeze()
            die_with_parent()
            if errors is not None:
                os.dup2(errors, 2)
                os.dup2(2, 1)
            body(write)
            code = 0
        except BaseException:  # noqa: BLE001 - reported through the exit code (and ``errors``)
            if errors is not None:  # never the caller's terminal
                try:
                    import traceback

                    os.write(2, traceback.format_exc().encode("utf-8", "replace"))
                except BaseException:  # noqa: BLE001
                    pass
        finally:
            os._exit(code)
    os.close(write)
    return pid, os.fdopen(read, "rb")


class ChildFailed(RuntimeError):
    """The child process ended without an answer (killed, crashed): its exit ``code``
    and the last line it wrote to stderr (``tail``)."""

    def __init__(self, message: str, code: int | None = None, tail: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.tail = tail


class SpawnedCall:
    """``function(*args)`` in a new Python process; ``result()`` waits for its answer."""

    def __init__(self, function: str, *args: Any, deferred: bool = False, preload: tuple[str, ...] = ()) -> None:
        """``args`` are sent as soon as the child starts; ``deferred``: ``send`` them later,
        when they are known. ``preload``: more modules the child imports meanwhile."""
        self.function = function
        self.preload = preload
        self.args: tuple[Any, ...] | None = None if deferred else args
        self.sent = False

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
        self._write((os.getpid(), self.function, self.preload), last=False)
        if self.args is not None:
            self.send(*self.args)
        return self

    def send(self, *args: Any) -> None:
        """The function's arguments: the child calls it now."""
        if self.sent:
            raise RuntimeError(f"{self.function}: arguments already sent")
        self.sent = True
        self._write(args, last=True)

    def _write(self, message: Any, last: bool) -> None:
        stdin = self.child.stdin
        assert stdin is not None
        try:
            stdin.write(pickle.dumps(message))
            stdin.flush()
            if last:
                stdin.close()
        except BrokenPipeError:  # died already: result() reports it
            pass

    def result(self) -> Any:
        """The function's value; the exception it raised is raised here."""
        if not self.sent:
            raise RuntimeError(f"{self.function}: result() before its arguments were sent")
        assert self.child.stdout is not None
        out = self.child.stdout.read()
        code = self.child.wait()
        if code != 0 or not out:
            self.errors.seek(0)
            tail = self.errors.read().decode("utf-8", errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise ChildFailed(f"{self.function} stopped in its child process (exit code {code}): {tail[0]}", code, tail[0])
        try:
            status, payload = pickle.loads(out)
        except Exception as exc:  # an exception whose class cannot be rebuilt from its pickle
            raise ChildFailed(f"{self.function}: its answer cannot be read ({type(exc).__name__}: {exc})") from None
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
    """The child: (caller's pid, function, preload) then the arguments, pickled on stdin;
    ("ok", value) or ("error", exception) pickled on stdout."""
    die_with_parent()
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print cannot corrupt the answer
    parent, function, preload = pickle.load(sys.stdin.buffer)
    if os.getppid() != parent:  # the caller died before die_with_parent() took effect
        sys.exit(1)
    try:
        module, _, name = function.partition(":")
        for other in preload:
            importlib.import_module(other)
        target = getattr(importlib.import_module(module), name)
        args = pickle.load(sys.stdin.buffer)
        payload: tuple[str, Any] = ("ok", target(*args))
    except Exception as exc:  # noqa: BLE001 - raised again in the caller
        payload = ("error", exc)
    try:
        data = pickle.dumps(payload)
    except Exception as exc:  # noqa: BLE001 - a value or an exception that cannot be pickled
        data = pickle.dumps(("error", ChildFailed(f"{function}: {type(payload[1]).__name__}: {payload[1]} (cannot be pickled: {exc})")))
    answer.write(data)
    answer.close()
