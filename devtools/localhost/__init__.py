"""A small local stand-in for the Azure Functions host, for Python v2-model apps.

`func` (Core Tools) cannot be installed everywhere, so this package runs a `FunctionApp` straight
from its binding metadata (`app.get_functions()`) against Azurite or real storage. One module per
job, so each can be read (and checked against the real host) on its own:

- `config`: host.json (`routePrefix`, `extensions.queues`) and `%APP_SETTING%` expressions.
- `functions`: the indexed functions and the `Invoker` that calls them as the worker does.
- `routing`: route templates and the host's matching order (by function name).
- `http_server`: the HTTP front end: requests in, responses out, JSON errors, CORS, HEAD.
- `queues`: queue-trigger pollers (encoding, batches, retries, leases, `<queue>-poison`).
- `timers`: timer-trigger schedulers (past due, catch-up, singleton); NCRONTAB in
  `devtools.ncrontab`.
- `lifecycle`: `LocalHost`, which starts and stops all of the above together.

The command line is `python -m devtools.host` (`devtools/host.py`). Only the trigger binding (plus
`context`) is passed to functions; other input/output bindings are not emulated.
"""

from devtools.localhost.lifecycle import LocalHost

__all__ = ["LocalHost"]
