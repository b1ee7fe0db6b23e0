"""sa-export: the command line of the Subject Assistant export service."""

import importlib.metadata

try:
    __version__ = importlib.metadata.version("sa-export")
except importlib.metadata.PackageNotFoundError:  # run from a source tree that was not installed
    __version__ = "0+unknown"
