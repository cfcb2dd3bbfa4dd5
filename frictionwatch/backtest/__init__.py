"""Backtests: replay generated traffic (or a NAB series) through the worker's metric and
detector code and score the alerts against the ground truth, to pick detector settings.

See docs/backtest.md. The CLI entry points are :func:`add_backtest_arguments` and
:func:`run_backtest_command`.
"""

from frictionwatch.backtest.cli import BACKTEST_SETTINGS, add_backtest_arguments, run_backtest_command
from frictionwatch.backtest.replay import BacktestInputError, ReplayResult, replay_events, tuned_map
from frictionwatch.backtest.scoring import Score, load_incidents, score_replay

__all__ = [
    "BACKTEST_SETTINGS",
    "BacktestInputError",
    "ReplayResult",
    "Score",
    "add_backtest_arguments",
    "load_incidents",
    "replay_events",
    "run_backtest_command",
    "score_replay",
    "tuned_map",
]
