"""python -m ops: the operator's commands (docs/OPERATIONS.md).

    python -m ops [--connection-string CS | --account NAME] list [--status S] [--older-than 2h] [--finished]
    python -m ops ... show EXPORT_ID
    python -m ops ... redrive [--yes]
    python -m ops ... requeue EXPORT_ID [--yes]
    python -m ops ... fail EXPORT_ID [--reason TEXT] [--yes]
    python -m ops ... ready [--panoptes-url URL] [--ml-service-url URL] [--timeout 5]

Which storage account: --connection-string (default: $AzureWebJobsStorage; Azurite's for a local
run), or --account NAME to work on the account in Azure with your sign-in (DefaultAzureCredential:
`az login`; your identity needs the Storage Table and Queue Data Contributor roles on it).
Commands that change something show what they will do and ask first, unless --yes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable

from exports import contract
from exports.settings import ExportSettings
from exports.store import Versioned
from ops import readiness, redrive, repair, views
from ops.connect import Storage, open_storage
from shared.settings import SettingsError, declared

DEFAULT_PANOPTES_URL = next(s.default for s in declared(ExportSettings) if s.name == "PANOPTES_URL")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def confirm(question: str, assume_yes: bool, ask: Callable[[str], str] = input) -> bool:
    if assume_yes:
        return True
    try:
        return ask(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:  # no terminal: never assume yes
        return False


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m ops", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    where = top.add_mutually_exclusive_group()
    where.add_argument(
        "--connection-string", help="storage connection string (default: $AzureWebJobsStorage)"
    )
    where.add_argument("--account", help="storage account name in Azure, reached with DefaultAzureCredential")
    commands = top.add_subparsers(dest="command", required=True)

    listing = commands.add_parser(
        "list", help="exports by status and age (active ones; --finished adds the rest)"
    )
    listing.add_argument(
        "--status", action="append", choices=sorted(contract.ACTIVE_STATUSES | contract.FINAL_STATUSES)
    )
    listing.add_argument(
        "--older-than", type=views.duration, help="created at least this long ago (30m, 2h, 1d)"
    )
    listing.add_argument("--project", help="one project's exports")
    listing.add_argument("--finished", action="store_true", help="also finished exports (scans the table)")
    listing.add_argument("--json", action="store_true", help="one JSON record a line")

    show = commands.add_parser("show", help="one export: its record, timeline, set and messages")
    show.add_argument("export_id")

    again = commands.add_parser("redrive", help="send the poison queue's messages back, each once")
    again.add_argument("--yes", action="store_true", help="do not ask")

    requeue = commands.add_parser("requeue", help="re-queue a stuck queued/building export")
    requeue.add_argument("export_id")
    requeue.add_argument("--yes", action="store_true")

    fail = commands.add_parser("fail", help="fail an active export (internal_error)")
    fail.add_argument("export_id")
    fail.add_argument(
        "--reason", default="", help="said to the user after 'stopped by the Zooniverse team: '"
    )
    fail.add_argument("--yes", action="store_true")

    ready = commands.add_parser("ready", help="check storage, Panoptes and the ML service, with timeouts")
    ready.add_argument("--panoptes-url", default=os.environ.get("PANOPTES_URL", DEFAULT_PANOPTES_URL))
    ready.add_argument("--ml-service-url", default=os.environ.get("SUBJECT_ASSISTANT_ML_SERVICE_URL"))
    ready.add_argument("--timeout", type=float, default=5.0, help="seconds each check may take (default 5)")
    return top


def main(argv: list[str] | None = None, ask: Callable[[str], str] = input) -> int:
    args = parser().parse_args(argv)
    try:
        storage = open_storage(args.connection_string, args.account)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    command = COMMANDS[args.command]
    try:
        return command(args, storage, ask)
    except repair.Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1


def _list(args: argparse.Namespace, storage: Storage, ask: Callable[[str], str]) -> int:
    now = utcnow()
    found = views.select(
        views.exports_to_list(storage, args.finished, args.project),
        now,
        set(args.status or ()),
        args.older_than,
        args.project,
    )
    if args.json:
        for export in found:
            print(json.dumps(views.record(export)))
    else:
        print(views.table(found, now))
    return 0


def _current(storage: Storage, export_id: str) -> Versioned:
    current = storage.store.get(export_id)
    if current is None:
        raise repair.Refused(f"no export {export_id!r}")
    return current


def _show(args: argparse.Namespace, storage: Storage, ask: Callable[[str], str]) -> int:
    print(views.show(storage, _current(storage, args.export_id), utcnow()))
    return 0


def _redrive(args: argparse.Namespace, storage: Storage, ask: Callable[[str], str]) -> int:
    planned = redrive.plan(storage)
    if not planned:
        print("the poison queue is empty")
        return 0
    for d in planned:
        print(f"  {'re-drive' if d.redrive else 'refuse  '}  {d.export_id or '-'}  ({d.reason})")
    count = sum(d.redrive for d in planned)
    more = " (the first 32 shown)" if len(planned) == redrive.BATCH else ""
    if not confirm(f"Re-drive {count} of these messages{more}, each once?", args.yes, ask):
        print("nothing changed")
        return 1
    done = redrive.redrive(storage)
    for d in done:
        print(f"{'re-driven' if d.redrive else 'refused'}: {d.export_id or d.message_id} ({d.reason})")
    print(
        f"{sum(d.redrive for d in done)} re-driven, {sum(not d.redrive for d in done)} refused (left in the poison queue)"
    )
    return 0


def _requeue(args: argparse.Namespace, storage: Storage, ask: Callable[[str], str]) -> int:
    current = _current(storage, args.export_id)
    repair.check_requeue(current.export, utcnow())
    if not confirm(f"Re-queue export {args.export_id} ({current.export.status})?", args.yes, ask):
        print("nothing changed")
        return 1
    written = repair.requeue(storage, current, utcnow())
    print(f"re-queued: {written.id} is {written.status}; a worker picks it up within seconds")
    return 0


def _fail(args: argparse.Namespace, storage: Storage, ask: Callable[[str], str]) -> int:
    current = _current(storage, args.export_id)
    if current.export.is_final:
        raise repair.Refused(f"export {args.export_id} is already {current.export.status}")
    task = f", ML task {current.export.ml_task_id} (not cancelled there)" if current.export.ml_task_id else ""
    if not confirm(f"Fail export {args.export_id} ({current.export.status}{task})?", args.yes, ask):
        print("nothing changed")
        return 1
    written = repair.fail(storage, current, args.reason, utcnow())
    print(f"failed: {written.id} ({written.error_code}): {written.error_message}")
    return 0


def _ready(args: argparse.Namespace, storage: Storage, ask: Callable[[str], str]) -> int:
    checks = readiness.run(storage, args.panoptes_url, args.ml_service_url, args.timeout)
    for check in checks:
        print(
            f"{'ok  ' if check.ok else 'DOWN'}  {check.name:<10}  {check.seconds * 1000:6.0f} ms  {check.detail}"
        )
    if not args.ml_service_url:
        print("(ML service not checked: give --ml-service-url or set SUBJECT_ASSISTANT_ML_SERVICE_URL)")
    return 0 if all(c.ok for c in checks) else 1


COMMANDS: dict[str, Callable[[argparse.Namespace, Storage, Callable[[str], str]], int]] = {
    "list": _list,
    "show": _show,
    "redrive": _redrive,
    "requeue": _requeue,
    "fail": _fail,
    "ready": _ready,
}

if __name__ == "__main__":
    sys.exit(main())
