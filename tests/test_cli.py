"""The frictionwatch command: help that teaches, clear errors, check-config, broker start/stop."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from frictionwatch.cli import main
from frictionwatch.kafka import ensure_topics
from frictionwatch.settings import Settings

COMMANDS = ("broker", "worker", "generate", "demo", "check-config", "backtest")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "example" in text and len(text) > 400


def test_top_level_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert all(command in text for command in COMMANDS)


def test_a_worker_does_not_load_the_plotting_library() -> None:
    # every command's parser imports the backtest's; matplotlib is loaded only to draw a plot
    # (frictionwatch/backtest/plots.py): about 30 MB a worker would carry for nothing
    code = (
        "import sys; from frictionwatch.cli import build_parser; build_parser(); "
        "import frictionwatch.streams.worker; print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'frictionwatch'" in loaded and "'matplotlib'" not in loaded


def test_check_config_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--show-settings"]) == 0
    out = capsys.readouterr().out
    assert "journey purchase: landing -> search -> product -> cart -> checkout -> payment -> confirmation*" in out
    assert "metrics_host             '127.0.0.1'" in out


def test_check_config_names_file_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "journeys.yml"
    bad.write_text("version: 1\njourneys:\n  shop:\n    steps:\n      - {name: a, stage: buying, channels: [web]}\n")
    assert main(["check-config", "--journey-map", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:5: journeys.shop.steps[0].stage: 'buying' is not one of" in err


def test_check_config_validates_a_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "incidents.yml"
    scenario.write_text(
        "version: 1\nincidents:\n  - {kind: step_outage, journey: purchase, step: paying, start: 1m, duration: 5m}\n"
    )
    assert main(["check-config", "--scenario", str(scenario)]) == 1
    assert "paying" in capsys.readouterr().err


def test_bad_settings_are_named(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRICTIONWATCH_PARTITIONS", "lots")
    assert main(["check-config"]) == 2
    assert "FRICTIONWATCH_PARTITIONS" in capsys.readouterr().err


def test_worker_without_kafka_says_what_to_do(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FRICTIONWATCH_BOOTSTRAP_SERVERS", raising=False)
    assert main(["worker"]) == 2
    assert "--bootstrap-servers" in capsys.readouterr().err


def test_generate_rejects_bad_options(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["generate", "--output", str(tmp_path / "x.jsonl"), "--rate", "-3", "--count", "10"]) == 2
    assert "--rate must be > 0" in capsys.readouterr().err


def test_generate_to_a_file_with_ground_truth(tmp_path: Path) -> None:
    out, truth, summary = tmp_path / "day.jsonl", tmp_path / "incidents.jsonl", tmp_path / "summary.json"
    scenario = Path(__file__).resolve().parents[1] / "frictionwatch" / "generator" / "scenarios" / "incidents.yml"
    code = main([
        "generate", "--output", str(out), "--duration", "10m", "--rate", "50", "--seed", "5",
        "--scenario", str(scenario), "--incidents", str(truth), "--summary", str(summary), "--quiet",
    ])  # fmt: skip
    assert code == 0
    assert len(out.read_text().splitlines()) > 1000
    assert '"incident":"payment_gateway_outage"' in truth.read_text()


@pytest.mark.integration
def test_broker_command_starts_prints_and_stops_on_signals(tmp_path: Path) -> None:
    for stop_with in (signal.SIGINT, signal.SIGTERM):
        process = subprocess.Popen(
            [sys.executable, "-m", "frictionwatch", "broker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        first = process.stdout.readline()  # blocks until the broker is up and the topics exist
        assert first.startswith("bootstrap servers: 127.0.0.1:"), first + (
            process.stderr.read() if process.stderr else ""
        )
        bootstrap = first.split(": ")[1].strip()
        partitions = ensure_topics(Settings.load(env={}, cli={"bootstrap_servers": bootstrap}), ["journey.clicks"])
        assert partitions == {"journey.clicks": 4}
        process.send_signal(stop_with)
        assert process.wait(timeout=20) == 0
        assert "broker stopped" in process.stdout.read()


@pytest.mark.integration
def test_demo_runs_for_its_duration_and_stops_cleanly() -> None:
    # 10 minutes of history, not the default 30: the live traffic waits for the worker to work
    # through it, and the demo waits (up to 2 minutes) for it to catch up before accounting
    done = subprocess.run(
        [sys.executable, "-m", "frictionwatch", "demo", "--duration", "60", "--history", "600"],
        capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "worker metrics    http://127.0.0.1:" in done.stdout
    lines = done.stdout.splitlines()
    sent = next(i for i, line in enumerate(lines) if "sent the history: " in line)
    caught_up = next(i for i, line in enumerate(lines) if "caught up: the worker has worked through" in line)
    assert sent < caught_up, done.stdout
    generated = next(line for line in done.stdout.splitlines() if line.startswith("generated "))
    accounted = next(line for line in done.stdout.splitlines() if line.startswith("worker: processed"))
    total = int(generated.split()[1].replace(",", ""))
    numbers = [int(part.strip(",").replace(",", "")) for part in accounted.split() if part[0].isdigit()]
    assert total > 1000 and sum(numbers) == total, done.stdout
    assert done.stdout.rstrip().endswith("stopped: worker, generator and broker")
    worker_log = next(line.split()[-1] for line in done.stdout.splitlines() if line.strip().startswith("worker log"))
    assert not Path(worker_log).parent.exists(), "the demo's log folder outlived it (no --keep-logs)"
