"""The ``servicedesk-etl`` command: parse arguments, call one stage, map errors to exit codes.

Each stage module owns its subcommand through two functions:
``add_arguments(parser)`` declares its flags and ``command(args, settings) -> int``
builds the stage's config from them and calls ``run``. Nothing here knows a stage's
internals; nothing in a stage reads ``sys.argv`` or the environment.

Exit codes: 0 success; 1 a gate said no (data); 2 usage or configuration error;
3 bad input file; 4 gate failed; 5 transient resource or server problem (try again);
70 internal error (a bug: please report it with ``--debug`` output); 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from pipeline import __version__
from pipeline.errors import EtlError

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "sample": ("pipeline.sample", "write realistic sample exports with known defects (and a manifest)"),
    "ingest": ("pipeline.ingest", "load the three workbooks into a SQLite file, faithfully"),
    "profile": ("pipeline.profile", "Gate 1: profile a database, score its quality, decide PROCEED/CLEAN/FIX_SOURCE"),
    "clean": ("pipeline.clean", "Gate 2: write a cleaned copy with an audit row for every change"),
    "migrate": ("pipeline.migrate", "Gate 3: load into a new PostgreSQL schema by COPY and cut over"),
    "rollback": ("pipeline.migrate", "switch the live schema back to the previous version"),
    "versions": ("pipeline.migrate", "list migrated schema versions"),
    "db": ("pipeline.pgserver", "start, stop or locate the embedded PostgreSQL server"),
    "preflight": ("pipeline.preflight", "check disk, memory, server and tools before a migration"),
    "backup": ("pipeline.backup", "create, list, verify, restore or prune backups"),
    "metrics": ("pipeline.dashboard", "print the dashboard metrics of the live schema"),
    "anonymize": ("pipeline.anonymize", "write a shareable copy: keyed pseudonyms, every quirk kept, optional sample"),
    "run": ("pipeline.run", "the whole pipeline: preflight, ingest, three gates, cut-over"),
    "prune": ("pipeline.retention", "apply retention to run folders, audit trails and backups"),
    "demo": ("pipeline.run", "sample data through the whole pipeline into the embedded server"),
    "sla": ("pipeline.sla", "the latest benchmark run against the service levels and the run before"),
    "report": ("pipeline.report", "write the self-contained HTML report of a run folder (report.html)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="servicedesk-etl",
        description="Move ServiceDesk XLSX exports into typed PostgreSQL through three data-contract gates.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file (see etl.example.toml)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text", help="log lines as text or JSON lines")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every stage on the terminal (text logs show warnings only by default)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
        module = importlib.import_module(module_name)
        adder = getattr(module, f"add_{name}_arguments", None) or getattr(module, "add_arguments")
        adder(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    from pipeline.config import load_settings
    from pipeline.observe import configure_logging

    # JSON lines are for machines: everything. Text is for people: warnings, unless -v.
    verbose = args.verbose or args.log_format == "json"
    configure_logging(args.log_format, logging.INFO if verbose else logging.WARNING)
    try:
        settings = load_settings(args.config)
        module = importlib.import_module(args._module)
        handler = getattr(module, f"{args.command}_command", None) or getattr(module, "command")
        return int(handler(args, settings) or 0)
    except EtlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line unless asked for the traceback
        if args.debug:
            raise
        logging.getLogger(__name__).debug("internal error", exc_info=True)
        print(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug and report it)", file=sys.stderr)
        return 70
