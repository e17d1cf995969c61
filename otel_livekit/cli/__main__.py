"""``python -m otel_livekit.cli``: the same as the ``otel-livekit`` command."""

from . import main

main()
