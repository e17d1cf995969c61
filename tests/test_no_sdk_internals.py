"""The package reads no private attribute of another library's objects (the OTel SDK's
exporters, readers or clients above all): such fields are what would tie it to one OTel
minor. Every ``obj._name`` in the package must name something the package defines itself."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "otel_livekit"
ALLOWED = {"_exit", "_replace", "_asdict", "_fields"}  # os._exit; namedtuple's public API
# LiveKit's plugin-author interface (every LiveKit STT/LLM/TTS plugin writes to these), used
# by the offline fakes that stand in for real plugins; not the OTel SDK
PLUGIN_API = {"_event_ch", "_input_ch", "_FlushSentinel"}


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(), str(p))) for p in sorted(PACKAGE.rglob("*.py"))]


def test_no_private_attribute_of_a_foreign_object_is_read() -> None:
    ours: set[str] = set()
    for _, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                ours.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                ours.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                ours.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                ours.add(node.target.id)
    foreign = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            known = ours | ALLOWED | PLUGIN_API
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                    and not node.attr.startswith("__") and node.attr not in known):  # fmt: skip
                foreign.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} .{node.attr}")
    assert foreign == [], "\n".join(foreign)
