"""Fixed names shared by the code, the binding metadata and infra/ (tests check they agree)."""

# App setting that holds the storage connection (host convention; identity form uses "__" suffixes).
STORAGE_CONNECTION = "AzureWebJobsStorage"
# Work queue of the export worker; the Functions host moves failed messages to "<queue>-poison".
EXPORT_QUEUE = "subject-assistant-exports"
EXPORT_POISON_QUEUE = EXPORT_QUEUE + "-poison"
# Where the operator's re-drive keeps each poison message it sent back, as it was (ops/redrive.py).
EXPORT_REDRIVEN_QUEUE = EXPORT_QUEUE + "-redriven"
# Deliveries of callbacks (export ids), and where the host moves the ones that kept failing.
CALLBACK_QUEUE = "subject-assistant-callbacks"
CALLBACK_POISON_QUEUE = CALLBACK_QUEUE + "-poison"
# Table of export state (table names are alphanumeric only).
EXPORT_TABLE = "SubjectAssistantExports"
# host.json's extensions.http.routePrefix: empty, so the page is served at `/`; the API's routes
# carry their own "api/" (shared/routing.py).
ROUTE_PREFIX = ""
