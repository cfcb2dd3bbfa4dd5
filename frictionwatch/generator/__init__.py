"""Synthetic customer-journey traffic for a journey map, with incidents to find.

A seeded discrete-event simulation of sessions walking the map's journeys (clicks,
errors, rage clicks, back-tracking, exits), contact-centre queues (Erlang C waits,
abandonment, transfers, repeat contacts) and survey answers, following a daily traffic
curve. Scenario files inject incidents and the generator writes their ground truth; a
share of records can be malformed on purpose. Output goes to JSON lines or Kafka.

>>> from frictionwatch.journeymap import load_journey_map
>>> config = GeneratorConfig(seed=7, rate=50.0, duration=60.0, start=1795514400.0)
>>> records = list(generate(load_journey_map(), config))
>>> records[0].kind, records[0].value["schema"], records == list(generate(load_journey_map(), config))
('clicks', 1, True)

Modules: :mod:`.config` (options), :mod:`.pipeline` (generate, incidents), :mod:`.traffic`
(the simulation), :mod:`.model` (behaviour derived from the map), :mod:`.contacts` (queues),
:mod:`.feedback` (scores), :mod:`.curves` (daily pattern), :mod:`.scenario` (incident files),
:mod:`.malformed` (bad input), :mod:`.sinks` (JSON lines, Kafka, run, summary).
"""

from frictionwatch.generator.config import GeneratorConfig
from frictionwatch.generator.malformed import MalformedKind
from frictionwatch.generator.pipeline import generate, incidents, paced
from frictionwatch.generator.records import CLICKS, CONTACTS, FEEDBACK, TOPIC_KINDS, GeneratedRecord
from frictionwatch.generator.scenario import Incident, Scenario, ScenarioError, load_scenario
from frictionwatch.generator.sinks import JsonLinesSink, KafkaSink, Producer, Sink, Summary, run, write_ground_truth

__all__ = [
    "CLICKS",
    "CONTACTS",
    "FEEDBACK",
    "TOPIC_KINDS",
    "GeneratedRecord",
    "GeneratorConfig",
    "Incident",
    "JsonLinesSink",
    "KafkaSink",
    "MalformedKind",
    "Producer",
    "Scenario",
    "ScenarioError",
    "Sink",
    "Summary",
    "generate",
    "incidents",
    "load_scenario",
    "paced",
    "run",
    "write_ground_truth",
]
