"""``otel-livekit``: the command line. ``demo`` runs a real offline AgentSession."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from . import environment_variables as ev


@click.group()
@click.version_option(package_name="otel_livekit")
def main() -> None:
    """OpenTelemetry for LiveKit Agents."""


@main.command()
@click.option("--backend", default=None, help="Backend (default: $OTEL_LIVEKIT_BACKEND or inferred).")
@click.option("--turns", default=2, show_default=True, help="Text turns before the audio turn.")
def demo(backend: str | None, turns: int) -> None:
    """Run a real LiveKit AgentSession offline (fake LLM/TTS/STT/VAD) and export its telemetry."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("LIVEKIT_TELEMETRY_ALLOW_PII", "0")
    from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

    from . import setup_tracing
    from .catalogue import METER_NAME
    from .offline import run_offline_session

    reader = InMemoryMetricReader()
    telemetry = setup_tracing(
        backend,
        service_name=os.environ.get(ev.OTEL_SERVICE_NAME) or "otel-livekit-demo",
        metric_readers=[reader],
    )
    texts = ["hello", "what's the weather?"] * (turns // 2 + 1)
    run = asyncio.run(run_offline_session(text_turns=texts[:turns], audio_turns=1))
    telemetry.force_flush()
    click.echo(f"\n{telemetry!r}", err=True)
    click.echo(f"assistant replies: {run.assistant_messages}", err=True)
    click.echo("\nvoice metrics recorded (catalogue instruments, summed over series):", err=True)
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            if sm.scope.name != METER_NAME:
                continue
            for m in sm.metrics:
                points: list[Any] = list(m.data.data_points)
                if isinstance(points[0], HistogramDataPoint):
                    count = sum(p.count for p in points)
                    mean = sum(p.sum for p in points) / count if count else 0.0
                    shown = f"count={count} mean={mean:.4g} {m.unit}"
                else:
                    shown = f"{sum(p.value for p in points):.6g} {m.unit}"
                click.echo(f"  {m.name:<48} {shown}", err=True)
    telemetry.shutdown()
    if run.assistant_messages < turns + 1:
        sys.exit(1)


@main.command()
def catalogue() -> None:
    """Print the metric catalogue as the README's Markdown table."""
    from .catalogue import markdown_table

    click.echo(markdown_table(), nl=False)


@main.group()
def stack() -> None:
    """The Collector + Prometheus + Grafana + Jaeger stack (docker compose)."""


@stack.command("write")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
@click.option("--set", "overrides", multiple=True, metavar="NAME=VALUE",
              help="Override an alert threshold (see the README's Thresholds table).")  # fmt: skip
def stack_write(directory: Path, force: bool, overrides: tuple[str, ...]) -> None:
    """Write docker-compose.yml, the Collector, Prometheus and Grafana files into DIRECTORY."""
    from .stack import StackError, parse_overrides, write

    try:
        written = write(directory, force=force, overrides=parse_overrides(overrides))
    except StackError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"wrote {len(written)} files to {directory}; next: cd {directory} && docker compose up -d")


if __name__ == "__main__":
    main()
