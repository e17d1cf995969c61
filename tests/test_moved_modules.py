"""``export/`` was regrouped by concern (destinations, delivery, local). Code written against
the flat layout — users' and the fault, deadline and spool tests as they were filed — still
imports the old paths and gets the very same modules, told where they moved."""

from __future__ import annotations

import importlib
import re
import sys

import pytest

# the flat layout of otel_livekit/export/ before the regrouping, and where each module went
FLAT = {
    "backends": "destinations", "headers": "destinations",
    "deadline": "delivery", "encoding": "delivery", "health": "delivery", "outbox": "delivery",
    "self_metrics": "delivery", "spool": "delivery", "spooling": "delivery",
    "file": "local", "prometheus": "local", "prometheus_families": "local",
    "prometheus_files": "local", "prometheus_names": "local",
}  # fmt: skip


@pytest.mark.parametrize("old", sorted(FLAT))
def test_an_old_path_imports_the_moved_module_itself(old: str) -> None:
    name = f"otel_livekit.export.{old}"
    sys.modules.pop(name, None)
    new = f"otel_livekit.export.{FLAT[old]}.{old}"
    with pytest.warns(DeprecationWarning, match=f"^{re.escape(f'{name} moved to {new}')}$"):
        module = importlib.import_module(name)
    assert module is importlib.import_module(new)


def test_names_imported_from_old_paths_are_the_current_ones() -> None:
    from otel_livekit.export.delivery import self_metrics, spool

    for old in ("self_metrics", "spool"):
        sys.modules.pop(f"otel_livekit.export.{old}", None)
    with pytest.warns(DeprecationWarning):
        from otel_livekit.export.self_metrics import ATTR_OUTCOME  # type: ignore[import-not-found]
        from otel_livekit.export.spool import CLAIM  # type: ignore[import-not-found]
    assert (CLAIM, ATTR_OUTCOME) == (spool.CLAIM, self_metrics.ATTR_OUTCOME)


def test_a_name_that_never_existed_still_fails() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("otel_livekit.export.no_such_module")
