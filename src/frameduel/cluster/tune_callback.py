"""The driver's Tune callback (imported only once RaySession is connected: it imports Ray Tune).

Tune pickles its callbacks with the experiment's state. What a callback hands results to (the sweep,
which writes the store) cannot be pickled, so the callback holds a key into this module's registry of
the driver's live receivers; a class defined here is pickled by reference, the registry with it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from ray import tune

Finish = Callable[[dict[str, Any], list[dict[str, Any]], "str | None"], None]
_receivers: dict[int, Finish] = {}
_keys = itertools.count()


def receive(finish: Finish) -> int:
    key = next(_keys)
    _receivers[key] = finish
    return key


def forget() -> None:
    _receivers.clear()


class StoreTrials(tune.Callback):
    """Collects each trial's reports and hands them over once Tune is done with the trial."""

    def __init__(self, receiver: int) -> None:
        self.receiver, self.reports = receiver, {}

    def finish(self, trial: Any, failure: str | None) -> None:
        _receivers[self.receiver](trial.config, self.reports.pop(trial.trial_id, []), failure)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.reports.setdefault(trial.trial_id, []).append(result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.finish(trial, None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        cause = (getattr(trial, "error_message", None) or "").strip().splitlines()
        self.finish(trial, cause[-1][:300] if cause else "the Tune trial raised")
