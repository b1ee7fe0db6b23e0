"""Re-driving the poison queue: each message at most once, sent back as it was.

A message is refused (and left in the poison queue) when it is malformed, when its export does
not exist, or when its export is already final: completed, failed or cancelled exports are
never brought back (users were told; a new export is the way). Every other message goes back to
the work queue unchanged (the token stays sealed for its export), then a copy is kept in
`subject-assistant-exports-redriven` and only then is it deleted from the poison queue. Messages
are received, not peeked, so two operators re-driving at once cannot send one message twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from azure.storage.queue import QueueMessage

from exports.messages import ExportMessage
from ops.connect import Storage

# Long enough to decide and send a batch; a message whose delete failed reappears after it.
INVISIBLE_SECONDS = 300
BATCH = 32


@dataclasses.dataclass(frozen=True)
class Decision:
    message_id: str
    export_id: str | None
    redrive: bool
    reason: str  # why (refused), or the export's status (re-driven)


def decide(content: str, storage: Storage) -> tuple[str | None, bool, str]:
    """(export id, re-drive?, reason) for one poison message."""
    message = ExportMessage.parse(content)
    if message is None:
        return None, False, "not an export message"
    current = storage.store.get(message.export_id)
    if current is None:
        return message.export_id, False, "no such export"
    export = current.export
    if export.is_final:
        return (
            export.id,
            False,
            f"the export is already {export.status}"
            + (f" ({export.error_code})" if export.error_code else ""),
        )
    return export.id, True, f"the export is {export.status}"


def plan(storage: Storage) -> list[Decision]:
    """What a re-drive would do with the first 32 messages (peeked: nothing changes)."""
    decisions = []
    for message in storage.poison.peek_messages(max_messages=BATCH):
        export_id, redrive, reason = decide(message.content, storage)
        decisions.append(Decision(message.id, export_id, redrive, reason))
    return decisions


def _received(storage: Storage) -> Iterator[QueueMessage]:
    while True:
        batch = list(
            storage.poison.receive_messages(max_messages=BATCH, visibility_timeout=INVISIBLE_SECONDS)
        )
        if not batch:
            return
        yield from batch


def redrive(storage: Storage) -> list[Decision]:
    """Re-drive every message of the poison queue once; what was done with each."""
    storage.ensure_redriven_queue()
    done: list[Decision] = []
    refused: list[QueueMessage] = []
    seen: set[str] = set()
    for message in _received(storage):
        message_id = message.id
        if message_id in seen:  # its invisibility ran out while we worked: handled already
            continue
        seen.add(message_id)
        content = str(message.content)
        export_id, again, reason = decide(content, storage)
        if not again:
            refused.append(message)
            done.append(Decision(message_id, export_id, False, reason))
            continue
        storage.queue.send_message(content)  # as it was: the host's encoding, the sealed token
        storage.redriven.send_message(content, time_to_live=-1)
        storage.poison.delete_message(message)
        done.append(Decision(message_id, export_id, True, reason))
    for message in refused:  # visible again at once, for the next look
        storage.poison.update_message(message, visibility_timeout=0)
    return done
