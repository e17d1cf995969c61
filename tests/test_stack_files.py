"""The stack's files, checked structurally where no Collector, Grafana or Jaeger binary can
run (see the README): docker-compose.yml through Debian's docker-compose, the Collector
configs (every pipeline component defined and used, ports matching compose, content removed
on every non-Langfuse trace pipeline, tail-sampling conditions on attributes real spans
carry), Prometheus's config, Grafana's provisioning and dashboards."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from livekit.agents.telemetry import pii, trace_types
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from servers import REPO_ROOT, prometheus_binary, require_or_skip

from otel_livekit import setup_tracing
from otel_livekit.export.local.prometheus_names import catalogue_names
from otel_livekit.metrics.catalogue import BY_NAME
from otel_livekit.offline import OfflineLLM, run_offline_session

COLLECTOR = REPO_ROOT / "collector-config"
COMPOSE = REPO_ROOT / "docker-compose.yml"
KINDS = ("receivers", "processors", "exporters", "connectors")
STRIP = "transform/strip_content"
LANGFUSE_EXPORTER = "otlphttp/langfuse"


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """The Collector's merge of several --config files: maps merge, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def compose() -> dict[str, Any]:
    return load(COMPOSE)


APM_OVERLAYS = ("apm", "apm-honeycomb", "apm-newrelic", "apm-datadog")


def compose_overlay_combinations() -> dict[str, dict[str, Any]]:
    """Every config docker-compose.yml can start the Collector with."""
    base = load(COLLECTOR / "config.yaml")
    none, langfuse = (load(COLLECTOR / f"{n}.yaml") for n in ("none", "langfuse"))
    combos = {
        "default": merge(merge(base, none), none),
        "langfuse": merge(merge(base, langfuse), none),
    }
    for overlay in APM_OVERLAYS:
        apm = load(COLLECTOR / f"{overlay}.yaml")
        combos[overlay] = merge(merge(base, none), apm)
        combos[f"langfuse+{overlay}"] = merge(merge(base, langfuse), apm)
    return combos


def all_configs() -> dict[str, dict[str, Any]]:
    return {**compose_overlay_combinations(),
            "scale-out/agent": load(COLLECTOR / "scale-out" / "agent.yaml"),
            "scale-out/gateway": load(COLLECTOR / "scale-out" / "gateway.yaml")}  # fmt: skip


@pytest.mark.parametrize("name", list(all_configs()))
def test_every_pipeline_component_is_defined_and_every_component_used(name: str) -> None:
    config = all_configs()[name]
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for pipeline, spec in config["service"]["pipelines"].items():
        assert spec.get("receivers") and spec.get("exporters"), pipeline
        for kind in ("receivers", "processors", "exporters"):
            for component in spec.get(kind, []):
                assert component in (config.get(kind) or {}), f"{name}: {pipeline} uses undefined {component}"
                used[kind].add(component)
        if "memory_limiter" in spec.get("processors", []):  # first, as the Collector advises
            assert spec["processors"][0] == "memory_limiter", pipeline
        if "batch" in spec.get("processors", []):
            assert spec["processors"][-1] == "batch", pipeline
    for kind in ("receivers", "processors", "exporters"):
        assert set(config.get(kind) or {}) == used[kind], f"{name}: {kind} defined but unused"
    extensions = config["service"].get("extensions", [])
    assert set(extensions) == set(config.get("extensions") or {}), name
    for exporter in config["exporters"].values():  # authenticators are enabled extensions
        auth = (exporter or {}).get("auth", {}).get("authenticator")
        assert auth is None or auth in extensions


@pytest.mark.parametrize("name", list(all_configs()))
def test_content_is_removed_on_every_trace_pipeline_but_langfuse(name: str) -> None:
    config = all_configs()[name]
    for pipeline, spec in config["service"]["pipelines"].items():
        if not pipeline.startswith("traces"):
            continue
        if spec["exporters"] == [LANGFUSE_EXPORTER]:
            assert STRIP not in spec.get("processors", []), "Langfuse is the opted-in destination"
        elif "loadbalancing/traces" not in spec["exporters"]:  # the agent tier forwards as is
            assert STRIP in spec["processors"], f"{name}: {pipeline} exports conversation content"
        assert LANGFUSE_EXPORTER not in spec["exporters"] or spec["exporters"] == [LANGFUSE_EXPORTER]


def test_scale_out_gateway_strips_exactly_what_the_local_config_strips() -> None:
    base = load(COLLECTOR / "config.yaml")["processors"][STRIP]
    gateway = load(COLLECTOR / "scale-out" / "gateway.yaml")["processors"][STRIP]
    assert base == gateway


def strip_patterns(context: str) -> list[re.Pattern[str]]:
    statements = next(s["statements"] for s in load(COLLECTOR / "config.yaml")["processors"][STRIP]
                      ["trace_statements"] if s["context"] == context)  # fmt: skip
    found = [re.search(r'delete_matching_keys\(attributes, "(.*)"\)$', s) for s in statements]
    return [re.compile(m.group(1).replace("$$", "$")) for m in found if m]


def lk_pii_attributes() -> set[str]:
    return {v for k, v in vars(trace_types).items()
            if k.startswith("ATTR_") and isinstance(v, str) and "pii" in v.split(".")}  # fmt: skip


def test_every_livekit_content_attribute_is_removed_and_metrics_attributes_are_kept() -> None:
    """The patterns cover what LiveKit itself treats as content (livekit.agents.telemetry.pii)."""
    patterns = strip_patterns("span")
    content = lk_pii_attributes() | set(pii.GEN_AI_PII_ATTRIBUTES) | {"gen_ai.prompt.variable.name"}
    assert len(content) > 20
    for key in content:
        assert pii.is_pii_attribute(key) or key.startswith("exception")
        assert any(p.search(key) for p in patterns), f"{key} would reach Jaeger/APM"
    kept = ("gen_ai.request.model", "gen_ai.usage.input_tokens", "voice_agent.turn.latency",
            "lk.e2e_latency", "lk.interrupted", "lk.speech_id", "gen_ai.tool.name", "error.type",
            "gen_ai.conversation.id", "lk.pipeline.name")  # fmt: skip
    for key in kept:
        assert not pii.is_pii_attribute(key)
        assert not any(p.search(key) for p in patterns), f"{key} would be removed"
    for key in ("lk.pii.user_transcript", "gen_ai.input.messages"):
        assert any(p.search(key) for p in strip_patterns("spanevent"))


def test_compose_collector_ports_match_the_receivers() -> None:
    svc = compose()["services"]["otel-collector"]
    published = {p.split(":")[-1] for p in svc["ports"]}
    config = compose_overlay_combinations()["default"]
    grpc = config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    http = config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    health = config["extensions"]["health_check"]["endpoint"]
    for endpoint in (grpc, http, health):
        assert endpoint.startswith("0.0.0.0:") and endpoint.split(":")[1] in published
    assert grpc.endswith(":4317") and http.endswith(":4318")
    # what other services reach inside the compose network
    assert config["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    scrape = {t for job in load(REPO_ROOT / "prometheus" / "prometheus.yml")["scrape_configs"]
              for sc in job["static_configs"] for t in sc["targets"]}  # fmt: skip
    exporter_port = config["exporters"]["prometheus"]["endpoint"].split(":")[1]
    (reader,) = config["service"]["telemetry"]["metrics"]["readers"]
    telemetry_port = reader["pull"]["exporter"]["prometheus"]["port"]
    assert {f"otel-collector:{exporter_port}", f"otel-collector:{telemetry_port}"} <= scrape
    # every overlay file the compose command can name exists
    for arg in svc["command"]:
        m = re.fullmatch(r"--config=/etc/otelcol/(?:\$\{\w+:-)?([\w.-]+?)\}?", arg)
        assert m and (COLLECTOR / m.group(1)).is_file(), arg


def test_compose_file_rules() -> None:
    """Pinned images, loopback-only ports, health checks and conditions, repo mounts."""
    services = compose()["services"]
    assert set(services) == {"otel-collector", "prometheus", "grafana", "jaeger"}
    for name, svc in services.items():
        image = svc["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: unpinned image {image}"
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port} is not loopback-only"
        for dep in (svc.get("depends_on") or {}).values():
            assert dep["condition"] in ("service_healthy", "service_started")
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), f"{name}: mount {source} missing"
        if name != "otel-collector":  # the contrib image has no shell: see the compose comment
            assert svc["healthcheck"]["test"][0] == "CMD"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    require_or_skip("docker-compose (Debian package)", binary is not None)
    assert binary is not None
    env_file = tmp_path / ".env"
    shutil.copy(REPO_ROOT / ".env.example", env_file)
    for env in ({}, {"OTELCOL_LANGFUSE_CONFIG": "langfuse.yaml", "OTELCOL_APM_CONFIG": "apm.yaml"}):
        args = [binary, "-f", str(COMPOSE), "--project-directory", str(REPO_ROOT),
                "--env-file", str(env_file), "config", "-q"]  # fmt: skip
        out = subprocess.run(args, capture_output=True, text=True, check=False,
                             env={"PATH": "/usr/bin:/bin", **env})  # fmt: skip
        assert out.returncode == 0, out.stderr


def test_env_example_names_every_variable_the_stack_reads() -> None:
    example = (REPO_ROOT / ".env.example").read_text()
    compose_vars = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    overlay_vars = {v for n in ("langfuse", *APM_OVERLAYS) for v in
                    re.findall(r"\$\{env:(\w+)", (COLLECTOR / f"{n}.yaml").read_text())}  # fmt: skip
    for var in compose_vars | overlay_vars:
        assert re.search(rf"^#? ?{var}=", example, re.M), f"{var} missing from .env.example"
    assert "sk-lf-" not in example.replace("sk-lf-...", "")


def test_prometheus_config_is_valid_with_the_rules(tmp_path: Path) -> None:
    promtool = prometheus_binary("promtool")
    require_or_skip("promtool (Debian prometheus)", promtool is not None)
    assert promtool is not None
    config = load(REPO_ROOT / "prometheus" / "prometheus.yml")
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]  # the compose mount
    config["rule_files"] = [str(REPO_ROOT / "prometheus" / "rules" / "*.yml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    out = subprocess.run([promtool, "check", "config", str(path)],
                         capture_output=True, text=True, check=False)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    rule_files = len(list((REPO_ROOT / "prometheus" / "rules").glob("*.yml")))
    assert f"SUCCESS: {rule_files} rule files found" in out.stdout


EXEMPLAR_HISTOGRAMS = {name for spec_name, (_, name) in catalogue_names().items()
                       if BY_NAME[spec_name].exemplars}  # fmt: skip


def test_grafana_provisioning_and_dashboards() -> None:
    """Own schema checks: unique panel ids, a grid that fits and does not overlap, every
    datasource uid provisioned, variables referenced by the panels defined."""
    datasources = load(REPO_ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yaml")
    uids = {d["uid"]: d for d in datasources["datasources"]}
    assert set(uids) == {"prometheus", "jaeger"}
    assert uids["prometheus"]["url"] == "http://prometheus:9090"
    assert uids["jaeger"]["url"] == "http://jaeger:16686"
    (link,) = uids["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert link["datasourceUid"] == "jaeger" and link["name"] == "trace_id"
    providers = load(REPO_ROOT / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml")
    (provider,) = providers["providers"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose()["services"]["grafana"]["volumes"]}
    assert mounts[provider["options"]["path"]] == "./grafana/dashboards"
    dashboards = sorted((REPO_ROOT / "grafana" / "dashboards").glob("*.json"))
    assert [p.name for p in dashboards] == ["pipeline-health.json", "tokens-cost.json", "voice-latency.json"]
    seen_uids = set()
    for path in dashboards:
        doc = json.loads(path.read_text())
        assert doc["uid"] not in seen_uids and len(doc["uid"]) <= 40
        seen_uids.add(doc["uid"])
        ids = [p["id"] for p in doc["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        cells: set[tuple[int, int]] = set()
        variables = {v["name"] for v in doc["templating"]["list"]}
        for panel in doc["panels"]:
            g = panel["gridPos"]
            assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, panel["title"]
            area = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
            assert not area & cells, f"{path.name}: {panel['title']} overlaps"
            cells |= area
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] in uids and panel["targets"], panel["title"]
            assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "prometheus"
                for var in re.findall(r"\$(\w+)", target["expr"]):
                    assert var.startswith("__") or var in variables, f"{panel['title']}: ${var}"
                if target.get("exemplar"):  # only instruments the recorder takes exemplars on
                    buckets = set(re.findall(r"(\w+)_bucket\b", target["expr"]))
                    assert buckets and buckets <= EXEMPLAR_HISTOGRAMS, (panel["title"], buckets)
        for var in doc["templating"]["list"]:
            assert var["datasource"]["uid"] in uids and var["includeAll"] and var["allValue"] == ".*"


def tail_conditions() -> list[str]:
    policies = load(COLLECTOR / "scale-out" / "gateway.yaml")["processors"]["tail_sampling"]["policies"]
    return [c for p in policies if p["type"] == "ottl_condition" for c in p["ottl_condition"]["span"]]


def would_match(condition: str, attributes: dict[str, Any]) -> bool:
    """The two OTTL forms the gateway's conditions use, with ${env:X:-default} at its default."""
    condition = re.sub(r"\$\{env:\w+:-([^}]+)\}", r"\1", condition)
    m = re.fullmatch(r'attributes\["([\w.]+)"\] (>|==) (\S+)', condition)
    assert m, condition
    key, op, literal = m.groups()
    if key not in attributes:
        return False
    if op == ">":
        return bool(float(attributes[key]) > float(literal))
    return bool(attributes[key] == (literal == "true"))


def test_tail_sampling_conditions_match_real_spans() -> None:
    """A real call with an interrupted say() and a slow LLM is kept by the gateway's
    policies; the attribute names the conditions read are on real spans."""
    exporter = InMemorySpanExporter()
    setup_tracing("none", span_processors=[SimpleSpanProcessor(exporter)])
    asyncio.run(run_offline_session(text_turns=("hello",), audio_turns=1, llm_=OfflineLLM(ttft=1.6),
                                    interrupted_say="This is a long announcement. " * 20))  # fmt: skip
    spans = [dict(s.attributes or {}) for s in exporter.get_finished_spans()]
    keys = {k for a in spans for k in a}
    conditions = tail_conditions()
    for condition in conditions:
        key = re.search(r'attributes\["([\w.]+)"\]', condition).group(1)  # type: ignore[union-attr]
        assert key in keys, f"no real span carries {key}"
    slow = [c for c in conditions if "turn.latency" in c]
    assert slow and any(would_match(slow[0], a) for a in spans)  # 1.6 s TTFT alone
    interrupted = [c for c in conditions if "interrupted" in c]
    assert interrupted and any(would_match(interrupted[0], a) for a in spans)


@pytest.mark.parametrize(("overlay", "backend", "env"), [
    ("apm-honeycomb", "honeycomb", {"HONEYCOMB_API_KEY": "k"}),
    ("apm-newrelic", "newrelic", {"NEW_RELIC_LICENSE_KEY": "k"}),
    ("apm", "grafana-cloud", {"GRAFANA_CLOUD_OTLP_ENDPOINT": "https://otlp-gateway.grafana.net/otlp",
                              "GRAFANA_CLOUD_INSTANCE_ID": "1", "GRAFANA_CLOUD_API_KEY": "k"}),
])  # fmt: skip
def test_each_apm_overlay_sends_the_header_its_vendor_takes(
    overlay: str, backend: str, env: dict[str, str]
) -> None:
    """The Collector overlay authenticates the way the package's own preset for that vendor
    does (the preset is checked against the vendors' documented headers in test_backends)."""
    from otel_livekit.export.destinations.backends import Destination, resolve_plan

    plan = resolve_plan(backend, {}, env)
    assert isinstance(plan.traces, Destination)
    preset = set(plan.traces.revealed_headers() or {})
    headers = set(load(COLLECTOR / f"{overlay}.yaml")["exporters"]["otlphttp/apm"]["headers"])
    assert headers == preset, (overlay, headers, preset)


def test_datadog_overlay_names_the_intake_headers() -> None:
    headers = load(COLLECTOR / "apm-datadog.yaml")["exporters"]["otlphttp/apm"]["headers"]
    assert headers == {"dd-api-key": "${env:APM_API_KEY}", "dd-protocol": "otlp"}


def test_nothing_scrapes_the_agent_on_livekits_own_port() -> None:
    """LiveKit's worker serves its own HTTP on 8081; the agent's metrics port is 9100 in the
    Prometheus config, the docs and the example alike."""
    config = (REPO_ROOT / "prometheus" / "prometheus.yml").read_text()
    targets = [t for job in yaml.safe_load(config)["scrape_configs"]
               for sc in job.get("static_configs", []) for t in sc["targets"]]  # fmt: skip
    assert "host.docker.internal:9100" in targets
    assert not any(t.endswith(":8081") for t in targets)
    assert "prometheus_port=9100" in (REPO_ROOT / "docs" / "prometheus.md").read_text()
