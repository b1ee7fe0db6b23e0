"""In-process HTTP stand-ins for Panoptes and the MegaDetector batch API.

Used by tests, the local demo and the benchmarks; never deployed.
"""

from .faults import Fault, FaultPlan
from .ml_service import MlServiceStandIn, Submission
from .panoptes import PanoptesStandIn
from .sample_data import SampleInfo, load_sample
from .server import Request, Response, StandInServer

__all__ = [
    "Fault",
    "FaultPlan",
    "MlServiceStandIn",
    "PanoptesStandIn",
    "Request",
    "Response",
    "SampleInfo",
    "StandInServer",
    "Submission",
    "load_sample",
]
