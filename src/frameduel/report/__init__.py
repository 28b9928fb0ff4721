"""Presenting results: summaries (statistics over stored runs) and their renderings."""
