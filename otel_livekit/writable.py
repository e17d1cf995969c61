"""The one check for "can this process write there", shared by setup and doctor."""

from __future__ import annotations

import os

from .errors import ConfigurationError


def writable_directory(directory: str | os.PathLike[str], variable: str) -> None:
    """The directory exists (or is made) and a file can be created in it: ``os.access``
    alone says yes to root on a read-only mount. Raises naming ``variable``."""
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, f".otel_livekit-probe-{os.getpid()}")
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ConfigurationError(f"{variable}={str(directory)!r} is not a writable directory ({reason})",
                                 variable=variable) from None  # fmt: skip
