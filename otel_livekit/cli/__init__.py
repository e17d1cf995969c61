"""``otel-livekit``: the command line — ``demo`` (simulated calls), ``report`` (trace file
to HTML), ``doctor`` (check the configuration against the backend), ``catalogue``."""

from __future__ import annotations

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
    from ..catalogue import markdown_table

    click.echo(markdown_table(), nl=False)


main.add_command(demo)
main.add_command(report_command)
main.add_command(doctor)


if __name__ == "__main__":
    main()
