"""`sa-export`: start an export of a Zooniverse subject set for the ML Subject Assistant, wait
for it, and download its results. The exit codes are outcome.Exit; client/README.md has it all."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sa_export import __version__, credentials, render, waiting
from sa_export.outcome import EXIT_BY_FINAL_STATUS, CommandError, Exit, NoCsv, UsageError
from sa_export.service import LinkExpired, Service, download_csv, service_url

EXIT_CODES = """exit codes:
  0    the export completed (with --wait), or the command did what it was asked
  1    the export failed
  2    usage: bad arguments, no service URL, no token
  3    the export was cancelled
  4    refused by the service (4xx): wrong or expired token, no role, unknown id, nothing to re-run
  5    network trouble, or the service answered 5xx
  6    the export completed, but its results CSV could not be saved
  130  interrupted (Ctrl-C): the export goes on at the service

The token comes from PANOPTES_TOKEN, or by signing in (pip install 'sa-export[signin]');
never from an argument. The service URL comes from --url or SA_EXPORT_URL."""


@dataclass
class Run:
    """One command's arguments and what it has learnt so far (for the Ctrl-C message)."""

    args: argparse.Namespace
    env: Mapping[str, str]
    export: dict[str, Any] | None = None
    _service: Service | None = None

    def service(self) -> Service:
        """The service, once: the URL checked first, then the token (signing in at most once)."""
        if self._service is None:
            raw = self.args.url or self.env.get("SA_EXPORT_URL", "")
            if not raw.strip():
                raise UsageError(
                    "no_url", "Which export service? Pass --url https://<service host> or set SA_EXPORT_URL."
                )
            base = service_url(raw)
            self._service = Service(base, credentials.token_source(self.env))
        return self._service

    def follow(self) -> str:
        assert self.export is not None
        return render.follow_command(str(self.export["id"]), self.args.url)

    def say(self, *lines: str) -> None:
        """Words for people, on stdout; none with --json, whose stdout is one JSON document."""
        if not self.args.json:
            for line in lines:
                print(line, flush=True)

    def emit(self, document: dict[str, Any]) -> None:
        if self.args.json:
            print(json.dumps(document, indent=2), flush=True)  # ASCII: valid whatever the locale


# -- commands ---------------------------------------------------------------------------


def export_command(run: Run) -> Exit:
    answer = run.service().start_export(run.args.project, run.args.subject_set)
    run.export = answer.export
    verb = "Started" if answer.created else "Joined the export already active for this subject set:"
    run.say(f"{verb} export {answer.export['id']} ({render.state_in_words(answer.export)}).")
    return settle(run, answer.export)


def rerun_command(run: Run) -> Exit:
    answer = run.service().rerun(run.args.export)
    run.export = answer.export
    if answer.created:
        run.say(
            f"Re-running the failed and missing images of {run.args.export}: export {answer.export['id']}."
        )
    else:
        run.say(f"An export of this subject set is already active: {answer.export['id']} (not re-run).")
    return settle(run, answer.export)


def status_command(run: Run) -> Exit:
    export = run.service().export(run.args.export)
    run.export = export
    return settle(run, export, started=False)


def cancel_command(run: Run) -> Exit:
    export = run.service().cancel(run.args.export)
    run.export = export
    run.say(*render.describe_export(export))
    run.emit(export)
    return Exit.OK


def list_command(run: Run) -> Exit:
    listing = run.service().listing(run.args.project)
    run.say(*render.describe_listing(listing))
    run.emit(listing)
    return Exit.OK


def settle(run: Run, export: dict[str, Any], started: bool = True) -> Exit:
    """After a start or a read: show the export, or wait for it to end (and save its CSV)."""
    service = run.service()
    if not (run.args.wait or run.args.csv):
        run.say(f"Follow it with: {run.follow()}" if started else "\n".join(render.describe_export(export)))
        run.emit(export)
        return Exit.OK

    def seen(latest: dict[str, Any]) -> None:
        run.export = latest

    interactive = sys.stdout.isatty() and sys.stderr.isatty()
    with waiting.Bar() if interactive else waiting.Quiet() as display, waiting.interruptible():
        final = waiting.wait_for_end(service, export, display, run.args.interval, seen)
    run.say(*render.describe_export(final))
    if run.args.csv and final.get("status") == "completed":
        try:
            final, size = save_csv(service, final, run.args.csv)
        except CommandError as error:
            error.export = final
            raise
        run.say(f"  Results CSV: saved to {run.args.csv} ({size:,} bytes)")
    run.emit(final)
    return EXIT_BY_FINAL_STATUS.get(str(final.get("status")), Exit.OK)


def save_csv(service: Service, export: dict[str, Any], destination: str) -> tuple[dict[str, Any], int]:
    """Download the results CSV. Its link is signed for at most an hour from the read that
    minted it: when it is refused, read the export once more for a fresh one."""
    for attempt in range(2):
        url = export.get("results_csv_url")
        if not url:
            raise NoCsv("no_results_csv", f"The service offers no results CSV for export {export.get('id')}.")
        try:
            return export, download_csv(str(url), destination)
        except LinkExpired:
            if attempt == 0:
                export = service.export(str(export["id"]))
    raise NoCsv(
        "csv_link_refused",
        "The results CSV's link was refused twice (expired, or the file is gone); try again later.",
    )


# -- the command line ---------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", help="the export service, e.g. https://<host> (default: $SA_EXPORT_URL)", default=None
    )
    common.add_argument(
        "--json", action="store_true", help="print the service's JSON (one document) for machines"
    )
    waits = argparse.ArgumentParser(add_help=False)
    waits.add_argument("--wait", action="store_true", help="wait until the export ends, showing its progress")
    waits.add_argument(
        "--csv",
        metavar="FILE",
        help="once the export completed, save its results CSV to FILE (implies --wait)",
    )
    waits.add_argument(
        "--interval",
        type=_seconds,
        metavar="SECONDS",
        help="seconds between reads while waiting (default: 2 while subjects are read, 15 at the ML service)",
    )
    top = argparse.ArgumentParser(
        prog="sa-export",
        description="Export Zooniverse subject sets to the ML Subject Assistant, and follow the exports.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Any, help: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, parents=[common, *parents])
        sub.set_defaults(run=run)
        return sub

    sub = command("export", export_command, "start an export of a subject set, or join the active one", waits)
    sub.add_argument("project", metavar="PROJECT", help="Zooniverse project id")
    sub.add_argument("subject_set", metavar="SET", help="subject set id")
    sub = command("status", status_command, "show one export", waits)
    sub.add_argument("export", metavar="EXPORT", help="export id")
    sub = command("list", list_command, "show a project's subject sets and their latest exports")
    sub.add_argument("project", metavar="PROJECT", help="Zooniverse project id")
    sub = command("cancel", cancel_command, "cancel an export")
    sub.add_argument("export", metavar="EXPORT", help="export id")
    sub = command("rerun", rerun_command, "re-run the failed and missing images of a completed export", waits)
    sub.add_argument("export", metavar="EXPORT", help="export id of a completed export")
    return top


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 3600")
    return value


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = parser().parse_args(argv)
    run = Run(args, os.environ if env is None else env)
    try:
        return int(args.run(run))
    except CommandError as error:
        print(f"sa-export: {error.message}", file=sys.stderr, flush=True)
        if error.status is not None:
            print(f"  (the service answered {error.status} {error.code})", file=sys.stderr, flush=True)
        if run.export is not None and run.export.get("status") in render.ACTIVE:
            print(f"  Export {run.export['id']} goes on; follow it with: {run.follow()}", file=sys.stderr)
        if error.export is None:
            error.export = run.export
        run.emit(error.as_json())
        return int(error.exit_code)
    except KeyboardInterrupt:
        if run.export is None and args.command == "export":
            message = (
                "Interrupted before the service answered; the export may have started: see "
                f"{shlex.join(['sa-export', 'list', args.project])}"
            )
        elif run.export is None:
            message = "Interrupted."
        elif run.export.get("status") in render.ACTIVE:
            message = f"Stopped waiting. Export {run.export['id']} goes on; follow it with: {run.follow()}"
        else:
            message = f"Interrupted. Export {run.export['id']} had ended ({run.export.get('status')})."
        print(f"\nsa-export: {message}", file=sys.stderr, flush=True)
        document = {"error": {"code": "interrupted", "message": message}}
        if run.export is not None:
            document["export"] = run.export
        run.emit(document)
        return int(Exit.INTERRUPTED)
