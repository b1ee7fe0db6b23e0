"""One module per section of `make bench`; each has `run(...)` and adds its rows and targets to
the report table (bench/report.py). The order of a full run is bench.options.SECTIONS."""
