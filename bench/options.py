"""The benchmark's options (`python -m bench --help`), read once into a typed record."""

from __future__ import annotations

import argparse
import dataclasses
import os

SECTIONS = ("export", "baseline", "memory", "tick", "http", "results", "cold_start")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


@dataclasses.dataclass(frozen=True)
class Options:
    panoptes_latency: float
    ml_latency: float
    memory_latency: float
    sizes: list[int]
    baseline_sizes: list[int]
    baseline_max: int
    memory_frames: list[int]
    export_runs: int
    tick_exports: int
    http_requests: int
    results_images: int
    cold_start_runs: int
    only: tuple[str, ...]


def parse_args(argv: list[str] | None, description: str) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--panoptes-latency",
        type=float,
        default=float(os.environ.get("BENCH_PANOPTES_LATENCY", 0.020)),
        help="seconds added to every Panoptes stand-in request (default 0.020)",
    )
    parser.add_argument(
        "--ml-latency",
        type=float,
        default=float(os.environ.get("BENCH_ML_LATENCY", 0.050)),
        help="seconds added to every ML stand-in request (default 0.050)",
    )
    parser.add_argument(
        "--memory-latency",
        type=float,
        default=None,
        help="Panoptes latency for the memory runs (default: --panoptes-latency)",
    )
    parser.add_argument("--sizes", type=_ints, default=[1_000, 10_000, 100_000])
    parser.add_argument("--baseline-sizes", type=_ints, default=[1_000, 10_000])
    parser.add_argument(
        "--baseline-max",
        type=int,
        default=10_000,
        help="largest baseline measured in full; bigger ones are measured on this "
        "many subjects and extrapolated linearly (labelled)",
    )
    parser.add_argument("--memory-frames", type=_ints, default=[100_000, 1_000_000])
    parser.add_argument(
        "--export-runs",
        type=int,
        default=3,
        help="exports of each size; the median wall time is compared (default 3)",
    )
    parser.add_argument("--tick-exports", type=int, default=1000)
    parser.add_argument("--http-requests", type=int, default=500)
    parser.add_argument("--results-images", type=int, default=1_000_000)
    parser.add_argument(
        "--cold-start-runs",
        type=int,
        default=15,
        help="fresh processes per import in the cold-start section (at least 10; default 15)",
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run, in this order: {','.join(SECTIONS)}",
    )
    args = parser.parse_args(argv)
    only = tuple(s.strip().replace("-", "_") for s in args.only.split(",") if s.strip())
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join(SECTIONS)}")
    if args.cold_start_runs < 10:
        parser.error("--cold-start-runs must be at least 10: the target compares medians of at least 10")
    return Options(
        panoptes_latency=args.panoptes_latency,
        ml_latency=args.ml_latency,
        memory_latency=args.panoptes_latency if args.memory_latency is None else args.memory_latency,
        sizes=args.sizes,
        baseline_sizes=args.baseline_sizes,
        baseline_max=args.baseline_max,
        memory_frames=args.memory_frames,
        export_runs=args.export_runs,
        tick_exports=args.tick_exports,
        http_requests=args.http_requests,
        results_images=args.results_images,
        cold_start_runs=args.cold_start_runs,
        only=only,
    )
