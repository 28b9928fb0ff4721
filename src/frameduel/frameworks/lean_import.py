"""Keep a framework worker's import to the framework: Keras and TensorFlow import scikit-learn, pandas
and JAX whenever they are installed (Keras' scikit-learn wrappers and pandas data adapter, TFLite's JAX
converter), none of which a measured cell uses. Here that is 1.3 s of every TF worker's start-up
(4.0 s -> 2.7 s) and their memory in every TF cell's peak RSS.

While the framework is first imported, the names are set to None in sys.modules, which Python's import
reads as "not installed"; those libraries' own `try: import ... except ImportError` takes the
absent branch. Afterwards the names are released again, so a later `import sklearn` (the digits
dataset) works as usual. A library already imported is left alone.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

OPTIONAL_EXTRAS = ("sklearn", "pandas", "jax")


@contextmanager
def without_optional_extras(keep: tuple[str, ...] = ()) -> Iterator[None]:
    """Import a framework inside this block; `keep` names an extra the framework does need (keras-jax: jax)."""
    blocked = [name for name in OPTIONAL_EXTRAS if name not in keep and name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
