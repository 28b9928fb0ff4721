"""Cross-framework parity: the same weights must give the same outputs and the same loss curve.

worker.py runs one framework's side in its own process; check.py transfers weights between two such
workers (torch -> tf or tf -> torch), compares everything against stated tolerances and names the
first layer where the two models part.
"""
