"""Benchmarks of the export service (`make bench` = `python -m bench`). See bench/__main__.py."""
