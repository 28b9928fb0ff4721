"""Deployment artefacts: export a workload's model, gate it against its source, benchmark it.

Every artefact lives in a directory of its own next to a ``manifest.json`` (see ``manifest.py``), laid
out as a model repository that ``frameduel serve`` can serve as it is::

    <out>/<model name>/<version>/manifest.json
    <out>/<model name>/<version>/<artefact file or directory>

Converters that need torch or tensorflow live in ``frameduel.frameworks``; this package stays
framework-free and loads runtimes lazily (``runtimes.load_runtime``).
"""
