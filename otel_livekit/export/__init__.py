"""Where telemetry leaves the process, by concern: ``destinations`` (where it goes),
``delivery`` (how it survives), ``local`` (sinks on this machine).

The modules used to sit flat in this package. Their old paths (``otel_livekit.export.spool``
and the like) still import, as the very same module objects, with a DeprecationWarning, so
code and tests written against them keep working (and patching either path patches both).
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Sequence
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

MOVED = {
    "backends": "destinations.backends",
    "headers": "destinations.headers",
    "deadline": "delivery.deadline",
    "encoding": "delivery.encoding",
    "health": "delivery.health",
    "outbox": "delivery.outbox",
    "self_metrics": "delivery.self_metrics",
    "spool": "delivery.spool",
    "spooling": "delivery.spooling",
    "file": "local.file",
    "prometheus": "local.prometheus",
    "prometheus_families": "local.prometheus_families",
    "prometheus_files": "local.prometheus_files",
    "prometheus_names": "local.prometheus_names",
}
"""Old flat module name → where it lives now, under this package."""


class _MovedModules(MetaPathFinder, Loader):
    """Resolves an old flat path to the moved module itself (no copy, no second import)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in MOVED:
            return None
        return ModuleSpec(fullname, self)

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        new = f"{__name__}.{MOVED[spec.name.rpartition('.')[2]]}"
        warnings.warn(f"{spec.name} moved to {new}", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """The moved module ran when it was imported under its own name."""


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())
