"""Keras 3 on its torch backend (framework "keras-torch"): keras_backend's step, Keras' torch trainer.

KERAS_BACKEND is set here, before Keras is first imported in this process: Keras picks its backend at
import, so one worker process runs one backend.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"

from frameduel.frameworks.keras_backend import *  # noqa: E402, F403 - the backend contract's names, unchanged
from frameduel.frameworks.keras_backend import __all__  # noqa: E402, F401
