"""Cells and trials as Ray tasks (`--executor ray`): the only package that imports ray.

session.py connects to a cluster and streams task results back; node_tasks.py is what runs on the
nodes (the same workers as a local run, started the same way); machines.py runs timing cells one
machine at a time; trials.py runs sweep trials on their CPUs only; tune.py is Ray Tune's search.
"""
