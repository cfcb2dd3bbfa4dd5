"""Exact CSAT, NPS and CES values per window and rated touchpoint."""

from __future__ import annotations

from typing import Any

import pytest

from frictionwatch.contract import FeedbackEvent
from frictionwatch.streams.feedback import FeedbackScores, feedback_scores
from frictionwatch.streams.windows import Touchpoint, WindowedCounts

T0 = 1_795_514_400.0  # a multiple of the 60 s window
QUEUE = {"channel": "phone", "queue": "billing"}
STEP = {"journey": "purchase", "step": "checkout", "channel": "web"}


class Answers:
    """Feeds survey answers, given as seconds after T0, to FeedbackScores with 60 s windows."""

    def __init__(self) -> None:
        self.scores = FeedbackScores()
        self.windows = WindowedCounts(60)
        self.count = 0

    def __call__(self, survey: str, *scores: int, at: float = 0.0, place: dict[str, Any] = QUEUE) -> list[bool]:
        accepted = []
        for score in scores:
            self.count += 1
            event = FeedbackEvent(f"f{self.count}", T0 + at, survey, score, **place)
            accepted.append(self.scores.add(event, self.windows))
        return accepted

    def fields(self) -> dict[Touchpoint, dict[str, float]]:
        [window] = self.windows.advance(T0 + 60)
        return {place: dict(fields) for place, fields in window.counts.items()}


def queue(survey: str) -> Touchpoint:
    return Touchpoint(channel="phone", queue="billing", survey=survey)


def test_nps_with_only_passives_is_zero() -> None:
    run = Answers()
    run("nps", 7, 8, 7, 8)
    fields = run.fields()[queue("nps")]
    assert fields == {"responses": 4.0, "score_sum": 30.0}
    assert feedback_scores("nps", fields) == 0.0


def test_nps_promoters_from_9_and_detractors_up_to_6() -> None:
    run = Answers()
    run("nps", 10, 9, 9, 8, 7, 6, 0, 10)
    fields = run.fields()[queue("nps")]
    assert fields == {"responses": 8.0, "score_sum": 59.0, "nps_promoters": 4.0, "nps_detractors": 2.0}
    assert feedback_scores("nps", fields) == 25.0  # (4 - 2) / 8 * 100
    assert feedback_scores("nps", {"responses": 2.0, "nps_detractors": 2.0}) == -100.0


def test_csat_is_the_share_of_4_and_5() -> None:
    run = Answers()
    run("csat", 5, 4, 3, 1)
    fields = run.fields()[queue("csat")]
    assert fields == {"responses": 4.0, "score_sum": 13.0, "csat_satisfied": 2.0}
    assert feedback_scores("csat", fields) == 0.5


def test_ces_is_the_mean_score() -> None:
    run = Answers()
    run("ces", 1, 2, 7, 4)
    fields = run.fields()[queue("ces")]
    assert fields == {"responses": 4.0, "score_sum": 14.0}
    assert feedback_scores("ces", fields) == 3.5


def test_a_queue_and_a_step_are_different_touchpoints() -> None:
    run = Answers()
    run("csat", 5, place=QUEUE)
    run("csat", 2, place=STEP)
    run("csat", 4, place={"journey": "purchase", "step": "checkout"})  # no channel named
    assert run.fields() == {
        Touchpoint("", "", "phone", "billing", "csat"): {"responses": 1.0, "score_sum": 5.0, "csat_satisfied": 1.0},
        Touchpoint("purchase", "checkout", "web", "", "csat"): {"responses": 1.0, "score_sum": 2.0},
        Touchpoint("purchase", "checkout", "", "", "csat"): {"responses": 1.0, "score_sum": 4.0, "csat_satisfied": 1.0},
    }


def test_surveys_of_one_touchpoint_are_kept_apart() -> None:
    run = Answers()
    run("csat", 5)
    run("nps", 10)
    assert set(run.fields()) == {queue("csat"), queue("nps")}


def test_a_late_answer_is_refused() -> None:
    run = Answers()
    assert run("csat", 5, at=30) == [True]
    run.windows.advance(T0 + 60)
    assert run("csat", 1, at=59) == [False]
    assert run("csat", 4, at=60) == [True]
    [window] = run.windows.advance(T0 + 120)
    assert dict(window.counts[queue("csat")]) == {"responses": 1.0, "score_sum": 4.0, "csat_satisfied": 1.0}


def test_no_responses_give_no_score() -> None:
    assert feedback_scores("csat", {}) is None
    assert feedback_scores("nps", {"responses": 0.0}) is None


def test_unknown_survey_is_an_error() -> None:
    with pytest.raises(ValueError):
        feedback_scores("ces2", {"responses": 1.0})
