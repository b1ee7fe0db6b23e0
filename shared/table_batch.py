"""Entity-group transactions whose multipart body is written and read here, sent through the
TableClient's own pipeline (its credential, signing, retries and transport).

Why not `TableClient.submit_transaction`: azure-data-tables builds the multipart request with
`email.generator` and parses the answer with `email.parser`, about 0.7 ms of CPU per operation,
and a poll tick writes one operation per active export (1,000 exports: ~0.7 s of a ~2 s tick).
Here the body is plain string formatting, byte for byte the SDK's own format (a test compares
the two), for the three operations the store batches: replace (If-Match), upsert and delete
(If-Match), on entities whose properties are all strings.

What `submit` raises, and what the caller should do:
- `BatchUnsupported`: nothing was applied (refused before sending, or the service answered 400
  to the batch or to one of its operations, e.g. a format it does not take): run the same
  operations through the SDK's transaction, which either works or raises the service's error.
- `BatchRejected`: the service refused an operation (412, 404, 409, ...); nothing was applied.
- `BatchUnreadable`: the service accepted the batch but its answer could not be read, so
  whether it applied is unknown: an error, never retried blindly.
- azure.core errors from the pipeline (network, 5xx after its retries, auth), as the SDK raises.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.data.tables import TableClient

REPLACE, UPSERT, DELETE = "replace", "upsert", "delete"
_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3})", re.M)
_ETAG = re.compile(rb"^ETag: (.*?)\r$", re.M | re.I)
_BOUNDARY = re.compile(r"boundary=([^;\s]+)")


class BatchRejected(Exception):
    """The service refused operation `index` (HTTP `status`, `code`): nothing was written."""

    def __init__(self, index: int, status: int, code: str):
        super().__init__(f"operation {index}: HTTP {status} {code}")
        self.index, self.status, self.code = index, status, code


class BatchUnsupported(Exception):
    """Not applied: something this module does not send, or a batch the service refused as bad
    input (400)."""


class BatchUnreadable(Exception):
    """The service answered 202 but the answer could not be read: applied or not is unknown."""


def _key(value: str) -> str:
    return quote(value.replace("'", "''"))


def _entity_json(entity: dict[str, Any]) -> str:
    body: dict[str, str] = {}
    for name, value in entity.items():
        if not isinstance(value, str):
            raise BatchUnsupported(f"property {name} is not a string")
        body[name] = value
        body[f"{name}@odata.type"] = "Edm.String"
    return json.dumps(body)


def build_body(table: TableClient, operations: list[tuple[str, dict[str, Any], str | None]],
               batch_boundary: str, changeset_boundary: str, date: str) -> bytes:
    """The $batch request body for (kind, entity, etag) operations, as the SDK writes it."""
    base = f"{table.scheme}://{table._primary_hostname}/{table.table_name}"  # noqa: SLF001
    parts = [f"--{batch_boundary}\r\nContent-Type: multipart/mixed; boundary={changeset_boundary}\r\n\r\n"]
    for index, (kind, entity, etag) in enumerate(operations):
        target = f"{base}(PartitionKey='{_key(entity['PartitionKey'])}',RowKey='{_key(entity['RowKey'])}')"
        lines = [f"--{changeset_boundary}", "Content-Type: application/http",
                 "Content-Transfer-Encoding: binary", f"Content-ID: {index}", ""]
        payload = ""
        if kind in (REPLACE, UPSERT):
            payload = _entity_json(entity)
            lines += [f"PUT {target} HTTP/1.1", "Content-Type: application/json",
                      f"Content-Length: {len(payload.encode('utf-8'))}",
                      f"x-ms-version: {table.api_version}", "DataServiceVersion: 3.0",
                      "Accept: application/json"]
        elif kind == DELETE:
            lines += [f"DELETE {target} HTTP/1.1", f"x-ms-version: {table.api_version}",
                      "DataServiceVersion: 3.0", "Accept: application/json;odata=minimalmetadata"]
        else:
            raise BatchUnsupported(f"operation {kind}")
        if kind == UPSERT and etag is not None:
            raise BatchUnsupported("an upsert takes no ETag")
        if kind != UPSERT:
            if etag is None:
                raise BatchUnsupported(f"{kind} needs an ETag")
            lines.append(f"If-Match: {etag}")
        lines += [f"x-ms-date: {date}", f"Date: {date}", "", payload]
        parts.append("\r\n".join(lines) + "\r\n")
    parts.append(f"--{changeset_boundary}--\r\n\r\n--{batch_boundary}--\r\n")
    return "".join(parts).encode("utf-8")


def parse_answer(content_type: str, body: bytes, count: int, writes: int) -> list[str]:
    """ETags of the operations that write a row (`writes` of the `count`), in order."""
    if not _BOUNDARY.search(content_type or ""):
        raise BatchUnreadable(f"answer is not multipart ({content_type!r})")
    statuses = [int(s) for s in _STATUS.findall(body)]
    failed = [s for s in statuses if not 200 <= s < 300]
    if failed:  # a changeset is atomic: one refused operation means none applied
        index = re.search(rb'"value"\s*:\s*"(\d+):', body)  # "<index>:<message>", as the SDK reads it
        code = re.search(rb'"code"\s*:\s*"([^"]+)"', body)
        code_text = code[1].decode() if code else f"HTTP {failed[0]}"
        if failed[0] == 400:
            raise BatchUnsupported(f"the service refused an operation as bad input ({code_text})")
        raise BatchRejected(int(index[1]) if index else 0, failed[0], code_text)
    etags = [m.decode().strip() for m in _ETAG.findall(body)]
    if len(statuses) != count or len(etags) != writes:
        raise BatchUnreadable(f"{len(statuses)} answers and {len(etags)} ETags for {count} "
                              f"operations ({writes} writing a row)")
    return etags


def submit(table: TableClient, operations: list[tuple[str, dict[str, Any], str | None]]) -> list[str]:
    """Run the operations as one entity-group transaction; the ETag of each (deletes have none,
    so the list holds the replaced/upserted rows' ETags in order)."""
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    body = build_body(table, operations, batch, changeset, formatdate(time.time(), usegmt=True))
    request = HttpRequest("POST", f"{table.scheme}://{table._primary_hostname}/$batch",  # noqa: SLF001
                          headers={"x-ms-version": table.api_version, "DataServiceVersion": "3.0",
                                   "MaxDataServiceVersion": "3.0;NetFx",
                                   "Content-Type": f"multipart/mixed; boundary={batch}",
                                   "Accept": "application/json"},
                          content=body)
    # stream=True, as the SDK's own batch does: the pipeline must not try to decode multipart.
    response = table._client.send_request(request, stream=True)  # noqa: SLF001
    answer = response.read()  # read in full: the connection goes back to the pool
    if response.status_code == 400:
        raise BatchUnsupported(f"the service refused the batch as bad input: {answer[:300]!r}")
    if response.status_code != 202:
        raise HttpResponseError(message=f"table batch answered HTTP {response.status_code}: "
                                        f"{answer[:300]!r}", response=response)
    writes = sum(1 for kind, _, _ in operations if kind != DELETE)
    return parse_answer(response.headers.get("Content-Type", ""), answer, len(operations), writes)
