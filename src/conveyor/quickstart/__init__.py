"""``conveyor quickstart``: the retraining loop end to end (``loop.py``); ``--sweep`` runs the tracking tour (``sweep.py``)."""

from conveyor.quickstart.loop import LoopResult, run_quickstart
from conveyor.quickstart.sweep import find_data, run_sweep

__all__ = ["LoopResult", "find_data", "run_quickstart", "run_sweep"]
