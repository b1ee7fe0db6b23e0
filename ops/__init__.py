"""The operator's command line: `python -m ops --help` (docs/OPERATIONS.md).

It works on the app's own storage account, as the app does (shared/storage.py): with a
connection string (Azurite, `--connection-string` or AzureWebJobsStorage), or in Azure with
`--account NAME` and DefaultAzureCredential (az login, a managed identity...). It reads and
changes exports through the export feature's store and its pure transitions (exports/store.py,
exports/model.py), never around them. One module per job: `connect` (storage), `views` (list
and show), `redrive` (the poison queue), `repair` (re-queue or fail a stuck export), `readiness`
(storage, Panoptes and the ML service, each with a timeout).
"""
