"""The benchmark results as a markdown table, and its place in README.md (pure text work)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import machine_line

BEGIN = "<!-- bench:begin (written by `python -m bench`; do not edit by hand) -->"
END = "<!-- bench:end -->"
BROKERS = {"tansu": "the embedded broker", "kafka": "Apache Kafka"}
MEMORY_TARGET = 278  # bytes per active session (issue 14: at most what it was when the issue was filed)


def _n(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _ms(seconds: float | None) -> str:
    """
    >>> _ms(0.0042), _ms(None)
    ('4 ms', 'n/a')
    """
    return "n/a" if seconds is None else f"{seconds * 1000:,.0f} ms"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def markdown(results: dict[str, Any]) -> str:
    """The table of one run (its date and machine first).

    >>> table = markdown({"started": "2026-11-24T06:00:00+00:00", "seconds": 60.0, "machine": {
    ...     "cpu": "AMD EPYC", "cores": 2, "memory_bytes": 2**33, "python": "3.11.7", "os": "Linux 6",
    ...     "load_average_at_start": [0.5, 0, 0]}, "memory": {"bytes_per_session": 250.0, "points": [
    ...     {"sessions": 10, "grown": 2500}, {"sessions": 100, "grown": 25000}]}})
    >>> table.splitlines()[-1].split(" | ")[1:2], table.splitlines()[-1].endswith("**met** |")
    (['slope between 10 and 100 sessions: **250 bytes**'], True)
    """
    info = results["machine"]
    lines = [
        f"Measured {results['started'][:16].replace('T', ' ')} UTC on {machine_line(info)}"
        f" (load average {info['load_average_at_start'][0]:.1f} at the start: the machine is shared);"
        f" the run took {results.get('seconds', 0) / 60:.0f} min"
        + (" (**--quick**: small sizes, not for comparison)" if results.get("quick") else "")
        + ".",
        "",
        "| what | measured | baseline in the same run | ratio | target | |",
        "|---|---|---|---:|---|---|",
    ]
    for engine, part in results.get("throughput", {}).items():
        lines += _throughput_rows(BROKERS.get(engine, engine), part, results["started"], info.get("cpu", ""))
    part = results.get("latency")
    if part:
        immediate, rule = part["immediate"], part["rule"]
        others = part.get("other_alerts", [])
        # before the first onset: false alerts on normal traffic (older results hold names only)
        normal = [a for a in others if not isinstance(a, dict) or a["seconds_after_first_onset"] < 0]
        ok = None
        if immediate["median"] is not None:
            ok = immediate["median"] <= 30 and immediate["missed"] == 0 and not normal
        when = _run_apart(part, results["started"], info.get("cpu", ""))
        kind = f" kind {part['detector_kind']}," if "detector_kind" in part else ""
        lines.append(
            f"| onset to alert, immediate path ({part['window_size']}-s windows,{kind}"
            f" {len(part['incidents'])} incidents{when}) | **median {_n(immediate['median'])} s, max"
            f" {_n(immediate['max'])} s** ({immediate['missed']} missed;"
            f" {len(normal)} false alerts on normal traffic, {len(others) - len(normal)} at other touchpoints"
            f" during the incidents) | — | — | median <= 30 s, none missed, no false alert | {_met(ok)} |"
        )
        oracle, ratio = part.get("oracle"), part.get("immediate_vs_oracle")
        if oracle:  # results from before the oracle was measured have none
            lines.append(
                f"| onset to alert, immediate path against the oracle (CUSUM knowing each incident, same"
                f" windows, the map's budget) | **{_n(ratio, 2)}× the oracle's median** | oracle median"
                f" {_n(oracle['median'])} s, max {_n(oracle['max'])} s ({oracle['missed']} it can't tell) |"
                f" {_n(ratio, 2)} | <= 1.5× | {_met(ratio <= 1.5 if ratio is not None else None)} |"
            )
        lines.append(
            f"| onset to alert, Prometheus rule path (shipped rules, 1-s scrape and evaluation) |"
            f" median {_n(rule['median'])} s, max {_n(rule['max'])} s ({rule['measured']} of"
            f" {len(part['incidents'])} incidents alerted by a rule within the run) | — | — | — | |"
        )
        delivery = part.get("delivery")
        if delivery:  # results from before the shipped routing was measured have none
            ok = delivery["median"] <= 1 if delivery["median"] is not None else None
            lines.append(
                f"| detector fired (worker posts) to webhook received, through alerts/alertmanager.yml |"
                f" **median {_ms(delivery['median'])}, max {_ms(delivery['max'])}**"
                f" ({delivery['measured']} incidents) | — | — | median <= 1 s | {_met(ok)} |"
            )
    part = results.get("memory")
    if part:
        small, large = part["points"]
        slope = part["bytes_per_session"]
        started = part.get("started")
        when = (
            f" (run of {started[:16].replace('T', ' ')} UTC)"
            if started and started[:16] != results["started"][:16]
            else ""
        )
        lines.append(
            f"| memory per active session{when} | slope between {small['sessions']:,} and {large['sessions']:,}"
            f" sessions: **{_n(slope)} bytes** | RSS growth: {_n(small['grown'])} and {_n(large['grown'])} bytes"
            f" | — | <= {MEMORY_TARGET} bytes | {_met(slope <= MEMORY_TARGET)} |"
        )
    part = results.get("latency")
    if part:
        lines += [
            "",
            "| incident | kind | immediate path | of which delivery | rule path | oracle | first alerts |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for item in part["incidents"]:
            immediate = "missed" if item["immediate"] is None else f"{item['immediate']:.0f} s"
            delivery = "—" if item.get("delivery") is None else _ms(item["delivery"])
            rule = "none" if item["rule"] is None else f"{item['rule']:.0f} s"
            oracle = f"{item['oracle']:.0f} s" if item.get("oracle") is not None else item.get("oracle_status", "n/a")
            lines.append(
                f"| {item['name']} | {item['kind']} | {immediate} | {delivery} | {rule} | {oracle} |"
                f" {'; '.join(item['alertnames'])} |"
            )
        others = [alert for alert in part.get("other_alerts", []) if isinstance(alert, dict)]
        if others:
            heading = "Alerts naming no incident's touchpoint (seconds after the first onset; < 0: normal traffic):"
            lines += ["", heading]
            lines += [
                f"- {a['alertname']} ({a['source']}, {a['severity']}) at {a['where']} {a['metric']}:"
                f" {a['seconds_after_first_onset']:.0f} s"
                for a in others
            ]
    return "\n".join(lines) + "\n"


def _run_apart(part: dict[str, Any], run_started: str, run_machine: str) -> str:
    """``, run of <date> UTC, load <x>`` for a part re-run apart from the run that ``run_started``
    dates (``--only ... --merge``), with its machine when that is not ``run_machine``; else "".

    >>> part = {"started": "2026-12-02T12:44:00+00:00", "load_average_at_start": 0.7, "machine": "Intel Xeon"}
    >>> _run_apart(part, "2026-11-30T13:49:00+00:00", "AMD EPYC")
    ', run of 2026-12-02 12:44 UTC on Intel Xeon, load 0.7'
    >>> _run_apart(part, "2026-12-02T12:44:00+00:00", "Intel Xeon")
    ''
    """
    started = part.get("started")
    if not started or started[:16] == run_started[:16]:
        return ""
    elsewhere = part.get("machine") and part["machine"] != run_machine
    return (
        f", run of {started[:16].replace('T', ' ')} UTC"
        + (f" on {part['machine']}" if elsewhere else "")
        + f", load {part['load_average_at_start']:.1f}"
    )


def _throughput_rows(broker: str, part: dict[str, Any], run_started: str = "", run_machine: str = "") -> list[str]:
    """The throughput and scale-out rows of one broker; a part re-run apart from the run that
    ``run_started`` dates says when it ran, and the load then, and its machine when not ``run_machine``.

    >>> _throughput_rows("Apache Kafka", {"not_measured": "no Java"})
    ['| throughput on Apache Kafka | not measured: no Java | — | — | — | |']
    >>> rate = {"events_per_second": 2000.0, "records_per_second": 5000.0}
    >>> part = {"started": "2026-12-02T12:44:00+00:00", "load_average_at_start": 0.7, "machine": "Intel Xeon",
    ...         "events": 500000, "batch": 100, "single": {"pipeline": rate, "empty_agent": rate, "ratio": 0.4},
    ...         "batched": {"records": 5000, "pipeline": rate, "bare_consumer": rate, "ratio": 0.01}}
    >>> _throughput_rows("Tansu", part, "2026-11-30T13:49:00+00:00", "AMD EPYC")[0][:80]
    '| throughput on Tansu, run of 2026-12-02 12:44 UTC on Intel Xeon, load 0.7, sing'
    >>> _throughput_rows("Tansu", part, "2026-11-30T13:49:00+00:00", "Intel Xeon")[0][:64]
    '| throughput on Tansu, run of 2026-12-02 12:44 UTC, load 0.7, si'
    """
    if "not_measured" in part:
        return [f"| throughput on {broker} | not measured: {part['not_measured']} | — | — | — | |"]
    single, batched = part["single"], part["batched"]
    pipeline, empty = single["pipeline"], single["empty_agent"]
    when = _run_apart(part, run_started, run_machine)
    rows = [
        f"| throughput on {broker}{when}, single-event records ({part['events']:,} events), one worker"
        " with `ingest = faust` |"
        f" **{_n(pipeline['events_per_second'])} events/s** |"
        f" empty Faust agent: {_n(empty['records_per_second'])} records/s | {_n(single['ratio'], 2)} |"
        f" >= 0.8 | {_met(None if single['ratio'] is None else single['ratio'] >= 0.8)} |"
    ]
    pipeline, bare = batched["pipeline"], batched["bare_consumer"]
    rate = pipeline["events_per_second"]
    ok = None if rate is None or batched["ratio"] is None else rate >= 100_000 and batched["ratio"] >= 0.3
    rows.append(
        f"| throughput on {broker}, arrays of up to {part['batch']} events ({batched['records']:,} records),"
        f" one worker with `ingest = faust` | **{_n(rate)} events/s** | bare consumer (confluent-kafka + orjson):"
        f" {_n(bare['events_per_second'])} events/s | {_n(batched['ratio'], 2)} |"
        f" >= 100,000 events/s and >= 0.3 | {_met(ok)} |"
    )
    direct = part.get("direct")
    if direct:  # the worker with ingest=direct, against the same baselines
        single_ratio, batched_ratio = direct["single_ratio"], direct["batched_ratio"]
        rate = direct["batched"]["events_per_second"]
        ok = None if rate is None or batched_ratio is None else rate >= 100_000 and batched_ratio >= 0.3
        rows += [
            f"| throughput on {broker}, single-event records, one worker with `ingest = direct` (the default) |"
            f" **{_n(direct['single']['events_per_second'])} events/s** |"
            f" empty Faust agent: {_n(empty['records_per_second'])} records/s | {_n(single_ratio, 2)} |"
            f" >= 0.8 | {_met(None if single_ratio is None else single_ratio >= 0.8)} |",
            f"| throughput on {broker}, arrays of up to {part['batch']} events, one worker with `ingest = direct`"
            " (the default) |"
            f" **{_n(rate)} events/s** | bare consumer: {_n(bare['events_per_second'])} events/s |"
            f" {_n(batched_ratio, 2)} | >= 100,000 events/s and >= 0.3 | {_met(ok)} |",
        ]
        python = direct.get("batched_python_decoder")
        if python:  # the same worker with the Python click decoder: what the compiled one gains
            rows.append(
                f"| throughput on {broker}, arrays of up to {part['batch']} events, one worker with `ingest = direct`"
                f" and the compiled click decoder (native/) |"
                f" **{_n(rate)} events/s** | the same with `click_decoder = python`:"
                f" {_n(python['events_per_second'])} events/s | {_n(direct['compiled_decoder_gain'], 2)} |"
                " (a gain, no target) | |"
            )
    for scale, how in (
        (part.get("scale_out"), "`ingest = faust`"),
        ((direct or {}).get("scale_out"), "`ingest = direct`"),
    ):
        if scale:
            earlier = _run_apart(scale, part.get("started") or run_started, part.get("machine") or run_machine)
            rows.append(
                f"| scale-out on {broker}{earlier}, single-event records: two workers with {how}"
                f" (2 cores, shared with the broker{_cores_busy(scale)}{settled_note(scale['two'])}) |"
                f" **{_n(scale['two']['events_per_second'])} events/s** |"
                f" one worker: {_n(scale['one']['events_per_second'])} events/s | {_n(scale['ratio'], 2)} |"
                f" >= 1.8 | {_met(None if scale['ratio'] is None else scale['ratio'] >= 1.8)} |"
            )
    return rows


def settled_note(run: dict[str, Any]) -> str:
    """Where the steady span of ``run`` began, when the workers' group settled after 10% of the events.

    >>> settled_note({"steady_from_share": 0.27}), settled_note({"steady_from_share": 0.1}), settled_note({})
    ('; steady span from 27% of the events, once the group had settled', '', '')
    """
    share = run.get("steady_from_share")
    return f"; steady span from {share:.0%} of the events, once the group had settled" if share and share > 0.1 else ""


def keep_scale_out(earlier: dict[str, Any], now: dict[str, Any]) -> None:
    """Carry the scale-out results of ``earlier`` throughput parts into ``now``'s where this run
    did not measure them (``--only throughput``), each stamped with the run that measured it.

    >>> earlier = {"tansu": {"started": "2026-12-03T09:16:09+00:00", "load_average_at_start": 0.4,
    ...     "machine": "Intel Xeon", "scale_out": {"ratio": 1.64}, "direct": {"scale_out": {"ratio": 1.71}}}}
    >>> now = {"tansu": {"started": "2026-12-03T17:12:29+00:00", "direct": {}}, "kafka": {"direct": {}}}
    >>> keep_scale_out(earlier, now)
    >>> tansu = now["tansu"]
    >>> tansu["direct"]["scale_out"]["ratio"], tansu["scale_out"]["started"][:16], "scale_out" in now["kafka"]
    (1.71, '2026-12-03T09:16', False)
    """
    for engine, part in now.items():
        before = earlier.get(engine, {})
        stamp = {key: before[key] for key in ("started", "load_average_at_start", "machine") if key in before}
        for old, new in ((before, part), (before.get("direct", {}), part.get("direct"))):
            if "scale_out" in old and new is not None and "scale_out" not in new:
                new["scale_out"] = {**stamp, **old["scale_out"]}


def _cores_busy(scale: dict[str, Any]) -> str:
    """What kept the cores busy in a scale-out's one- and two-worker runs (when it was measured), and
    the events each core of worker CPU handled with two workers against one: near 1, the two workers
    lost nothing to each other, and the ratio is bounded by the cores left to them.

    >>> one = {"events_per_second": 9000.0, "cpu_cores": {"worker 1": 0.97, "broker": 0.11, "machine": 1.11}}
    >>> two = {"events_per_second": 15500.0,
    ...        "cpu_cores": {"worker 1": 0.88, "worker 2": 0.82, "broker": 0.19, "machine": 1.92}}
    >>> for part in _cores_busy({"one": one, "two": two}).split("; ")[1:]:
    ...     print(part)
    cores busy with one worker: worker 0.97, broker 0.11, machine 1.11
    with two: workers 0.88 + 0.82, broker 0.19, machine 1.92
    events per worker core with two: 0.98 of one's
    >>> _cores_busy({"one": {}, "two": {}})
    ''
    """

    def busy(cores: dict[str, float]) -> str:
        workers = [used for name, used in cores.items() if name.startswith("worker")]
        return (
            f"{'worker' if len(workers) == 1 else 'workers'} {' + '.join(f'{used:.2f}' for used in workers)},"
            f" broker {cores.get('broker', 0.0):.2f}, machine {cores['machine']:.2f}"
        )

    def per_core(run: dict[str, Any]) -> float | None:
        workers = sum(used for name, used in run["cpu_cores"].items() if name.startswith("worker"))
        return run["events_per_second"] / workers if workers and run.get("events_per_second") else None

    one, two = scale["one"], scale["two"]
    if not one.get("cpu_cores") or not two.get("cpu_cores"):
        return ""
    text = f"; cores busy with one worker: {busy(one['cpu_cores'])}; with two: {busy(two['cpu_cores'])}"
    if (alone := per_core(one)) and (together := per_core(two)):
        text += f"; events per worker core with two: {together / alone:.2f} of one's"
    return text


def update_readme(path: Path, table: str) -> None:
    """Put ``table`` between the benchmark markers of README.md (appending a section if none)."""
    text = path.read_text()
    block = f"{BEGIN}\n{table}{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n## Benchmarks\n\n" + block + "\n"
    path.write_text(text)
