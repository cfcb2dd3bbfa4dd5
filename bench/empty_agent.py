"""The throughput baseline for single-event records: a Faust worker whose agents only iterate.

Same Faust settings as ``frictionwatch worker`` (raw serializers, at_least_once, the same
broker options), one agent per input topic doing nothing but ``async for`` over
``stream.events()``: the framework's own per-record floor. The count of records it has
seen is served as ``bench_records_consumed`` on /metrics, read at scrape time (nothing is
done per record but ``+= 1``).

    python -m bench.empty_agent --bootstrap-servers HOST:PORT --group-id G --metrics-port P \\
        --topics journey.clicks,journey.contacts,journey.feedback
"""

from __future__ import annotations

import argparse
from typing import Any

import faust
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from frictionwatch.kafka import faust_broker_options
from frictionwatch.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--group-id", required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--topics", required=True, help="comma-separated input topics")
    args = parser.parse_args()
    settings = Settings.load(cli={"bootstrap_servers": args.bootstrap_servers, "group_id": args.group_id})
    app = faust.App(
        settings.group_id,
        **faust_broker_options(settings),
        store="memory://",
        autodiscover=False,
        processing_guarantee="at_least_once",
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
    )
    seen = [0]
    registry = CollectorRegistry()
    gauge = Gauge("bench_records_consumed", "Records the empty agents iterated over.", registry=registry)
    gauge.set_function(lambda: float(seen[0]))
    start_http_server(args.metrics_port, addr="127.0.0.1", registry=registry)

    for name in args.topics.split(","):

        async def iterate(stream: Any) -> None:
            async for _ in stream.events():
                seen[0] += 1

        app.agent(app.topic(name), name=f"empty-{name}")(iterate)

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
