"""Emulator of the MegaDetector batch API v4 as Zooniverse deploys it (zooniverse/CameraTraps,
branch `zooniverse-deployment`): a real HTTP server for tests, `make run`, `make demo` and the
bench. What it copies and what it decides: README.md here. Modules, one job each:

- real.py        the deployed service's constants and texts
- wire.py        how its answers look on the wire (Flask, Werkzeug, Azure Blob Storage)
- api.py         the Flask app's routes and their checks
- listing.py     create_batch_job(): fetch, validate and filter the image list
- tasks.py       the job status table, the scripted plans and the monitor that moves them
- blob_store.py  the results blob: what the file holds, how it is served, hostile modes
- detections.py  the detections file's bytes, synthetic images, hostile bodies
- service.py     MlServiceStandIn: the server, its defaults and its test controls
"""

from .listing import Submission
from .service import MlServiceStandIn

__all__ = ["MlServiceStandIn", "Submission"]
