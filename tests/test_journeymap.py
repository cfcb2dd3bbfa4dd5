"""The journey map loader: the shipped example, and errors that name file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from frictionwatch.journeymap import JourneyMapError, load_journey_map, parse_duration, parse_journey_map

GOOD = """\
version: 1
journeys:
  shop:
    session_timeout: 15m
    steps:
      - {name: browse, stage: consideration, channels: [web]}
      - {name: paid, stage: purchase, channels: [web, app], goal: true, surveys: [csat]}
contact_centre:
  phone: {queues: [billing], surveys: [nps]}
"""


def problems(text: str) -> list[tuple[int, str]]:
    with pytest.raises(JourneyMapError) as caught:
        parse_journey_map(textwrap.dedent(text), "map.yml")
    return [(problem.line, problem.field) for problem in caught.value.problems]


def test_the_example_map_has_the_purchase_and_support_journeys() -> None:
    journey_map = load_journey_map()
    purchase = journey_map.journeys["purchase"]
    assert [step.name for step in purchase.steps] == [
        "landing",
        "search",
        "product",
        "cart",
        "checkout",
        "payment",
        "confirmation",
    ]
    assert [step.name for step in purchase.goal_steps] == ["confirmation"]
    assert purchase.session_timeout == 1800.0
    assert journey_map.step("purchase", "payment") is not None and journey_map.step("purchase", "chat") is None
    assert "support" in journey_map.journeys
    assert {"phone", "chat", "email"} <= set(journey_map.contact_channels)
    assert journey_map.has_queue("phone", "billing") and not journey_map.has_queue("email", "billing")


def test_a_small_valid_map() -> None:
    journey_map = parse_journey_map(GOOD)
    shop = journey_map.journeys["shop"]
    assert shop.session_timeout == 900.0
    assert [(s.name, s.index, s.goal) for s in shop.steps] == [("browse", 0, False), ("paid", 1, True)]
    assert list(journey_map.touchpoints()) == [
        ("shop", shop.steps[0], "web"),
        ("shop", shop.steps[1], "web"),
        ("shop", shop.steps[1], "app"),
    ]
    assert list(journey_map.queues()) == [("phone", "billing")]


def test_every_problem_is_reported_with_its_line() -> None:
    found = problems("""\
        version: 1
        journeys:
          shop:
            session_timeout: soon
            steps:
              - {name: browse, stage: looking, channels: [web]}
              - {name: Paid!, stage: purchase, channels: [web]}
              - {name: done, stage: purchase, channels: [], goal: yes-ish}
        colour: blue
        """)
    assert (4, "journeys.shop.session_timeout") in found
    assert (6, "journeys.shop.steps[0].stage") in found
    assert (7, "journeys.shop.steps[1].name") in found
    assert (8, "journeys.shop.steps[2].channels") in found
    assert (8, "journeys.shop.steps[2].goal") in found
    assert (9, "<top>.colour") in found


def test_missing_pieces() -> None:
    assert (1, "version") in problems("journeys: {}\n")
    found = problems("""\
        version: 1
        journeys:
          shop:
            steps:
              - {name: a, stage: awareness, channels: [web]}
              - {name: a, stage: awareness, channels: [web]}
        """)
    assert (6, "journeys.shop.steps[1].name") in found
    assert (5, "journeys.shop.steps") in found  # no goal step


def test_all_is_not_a_channel_of_a_step() -> None:
    """``all`` names a step on all its channels (the detectors' pooled series)."""
    found = problems("""\
        version: 1
        journeys:
          shop:
            steps:
              - {name: paid, stage: purchase, channels: [web, all], goal: true}
        """)
    assert (5, "journeys.shop.steps[0].channels") in found


def test_version_and_yaml_errors() -> None:
    assert problems("version: 2\njourneys: {}\n")[0] == (1, "version")
    line, field = problems("version: 1\njourneys: [unclosed\n")[0]
    assert field == "<yaml>" and line >= 2


def test_detector_overrides_are_checked_against_the_map() -> None:
    found = problems(
        GOOD
        + textwrap.dedent("""\
        detectors:
          defaults: {sensitivity: -1, direction: sideways, consecutive: 0, warmup: 1.5, kind: magic}
          overrides:
            - match: {journey: shop, step: nowhere}
            - match: {queue: billing}
              min_volume: 10
            - {min_volume: 3}
        """)
    )
    assert (11, "detectors.defaults.sensitivity") in found
    assert (11, "detectors.defaults.direction") in found
    assert (11, "detectors.defaults.consecutive") in found
    assert (11, "detectors.defaults.warmup") in found
    assert (11, "detectors.defaults.kind") in found
    assert (13, "detectors.overrides[0].match.step") in found
    assert (16, "detectors.overrides[2].match") in found
    assert not any(field.startswith("detectors.overrides[1]") for _, field in found)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(JourneyMapError) as caught:
        load_journey_map(tmp_path / "missing.yml")
    assert "missing.yml" in str(caught.value)
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 1\njourneys: {}\n")
    with pytest.raises(JourneyMapError) as caught:
        load_journey_map(bad)
    assert str(caught.value).startswith(f"{bad}:2: journeys")


@pytest.mark.parametrize(("text", "seconds"), [("30m", 1800), ("90s", 90), ("1.5h", 5400), (45, 45), ("2d", 172800)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5m", 0, True, "5 parsecs", None])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
