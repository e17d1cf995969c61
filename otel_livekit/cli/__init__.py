"""``otel-livekit``: the command line — ``demo`` (simulated calls), ``report`` (trace file
to HTML), ``doctor`` (check the configuration against the backend), ``catalogue``,
``settings``."""

from __future__ import annotations

from pathlib import Path

import click

from .demo import demo
from .doctor import doctor
from .report import report_command


@click.group()
@click.version_option(package_name="otel_livekit")
def main() -> None:
    """OpenTelemetry for LiveKit Agents."""


@main.command()
def catalogue() -> None:
    """Print the metric catalogue as the README's Markdown table."""
    from ..metrics.catalogue import markdown_table

    click.echo(markdown_table(), nl=False)


@main.command()
def settings() -> None:
    """Print every setting (variable, value, default, meaning) as docs/configuration.md's table."""
    from ..config import settings_markdown

    click.echo(settings_markdown(), nl=False)


main.add_command(demo)
main.add_command(report_command)
main.add_command(doctor)


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
