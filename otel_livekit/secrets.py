"""A string that never shows itself: API keys and auth headers live in these until the
moment they are handed to an exporter."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit, urlunsplit

_MASK: Final = "***"


class Secret:
    """Holds a secret value; ``repr``/``str`` print a mask, so it is safe in logs and errors."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({_MASK!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def safe_url(url: str) -> str:
    """The URL with any ``user:password@`` masked, for logs and ``doctor``'s output."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{_MASK}@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
