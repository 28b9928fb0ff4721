"""Measurement: running cells in worker processes and turning their timings into statistics."""
