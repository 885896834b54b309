"""The one exception hierarchy of the pipeline.

Every error says what is wrong and how to fix it (``remedy``). ``FixYourData``
errors are terminal: running again will not help until the input changes.
``TryAgain`` errors are transient: a server that is down, a disk that filled up.
The CLI turns any of them into one line and the exit code of its class.
"""

from __future__ import annotations

from typing import Any


class EtlError(Exception):
    """Base class: ``message`` says what is wrong, ``remedy`` how to fix it."""

    exit_code = 2

    def __init__(self, message: str, remedy: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        if self.remedy:
            return f"{self.message}\n  fix: {self.remedy}"
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled as its state, not by calling __init__ again (subclasses take other
        # arguments): an error raised in a child process is raised again in the caller.
        return (_restored, (type(self), self.args, self.__dict__.copy()))


def _restored(cls: type[EtlError], args: tuple[Any, ...], state: dict[str, Any]) -> EtlError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class FixYourData(EtlError):
    """The input is wrong (bad file, missing header, unfixable data)."""

    exit_code = 3


class InputFileError(FixYourData):
    """A file given on the command line cannot be used as it is."""


class ConfigError(EtlError):
    """The configuration file or a flag is wrong."""

    exit_code = 2


class GateFailed(EtlError):
    """A gate ran and said no."""

    exit_code = 4

    def __init__(self, gate: str, message: str, remedy: str = "") -> None:
        super().__init__(f"{gate}: {message}", remedy)
        self.gate = gate


class TryAgain(EtlError):
    """A transient resource problem: the same command may succeed later."""

    exit_code = 5


class ResourceExhausted(TryAgain):
    """Disk or memory ran short during a run."""


class TargetUnavailable(TryAgain):
    """The PostgreSQL server cannot be reached or refused the connection."""
