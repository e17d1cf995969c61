"""CPU per OTLP post and per encoded span on the export threads: this package's writers
against what they replaced, in the same process.

- posts: the 64-span batch below to a loopback backend in another process, through
  ``requests.Session`` (the exporters' client before) and through ``HttpClient`` (urllib3);
- spans: one batch of 64 realistic spans (LiveKit's names, 8 attributes, an event on some),
  encoded by the SDK's OTLP encoder and by ``otlp_spans`` (byte-identical output, checked);
- views: the no-content destination view of the same spans (content keys looked up).

Thread CPU time (``time.thread_time``), the median of ``--rounds`` rounds.

Run: .venv/bin/python bench/bench_post.py [--rounds 7] [--posts 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback import backend_process


def cpu_us(fn: Callable[[], object], n: int, rounds: int) -> float:
    """Median over ``rounds`` of the thread CPU µs per call of ``fn`` (``n`` calls a round)."""
    per: list[float] = []
    for _ in range(rounds):
        t = time.thread_time()
        for _ in range(n):
            fn()
        per.append((time.thread_time() - t) / n * 1e6)
    return statistics.median(per)


def spans(n: int) -> list:  # type: ignore[type-arg]
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "agent"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("livekit-agents")
    names = ("llm_request", "tts_request", "agent_turn", "user_turn", "llm_node", "tts_node")
    for i in range(n):
        attributes = {"lk.room_name": "room-1234", "lk.job_id": "AJ_x8Kq2", "session.id": "sess-1",
                      "lk.speech_id": f"speech_{i // 6:08x}", "gen_ai.request.model": "gpt-4.1-mini",
                      "gen_ai.usage.input_tokens": 412 + i, "lk.retry_count": 0,
                      "lk.pii.user_input": "hi"}  # fmt: skip
        with tracer.start_as_current_span(names[i % len(names)], attributes=attributes) as span:
            if i % 2:
                span.add_event("voice_agent.transcript", {"voice_agent.transcript.role": "assistant"})
    return list(memory.get_finished_spans())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--posts", type=int, default=200)
    args = ap.parse_args()

    import requests
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_encode

    from otel_livekit.export.delivery.http_client import HttpClient
    from otel_livekit.export.delivery.otlp_spans import encode_spans
    from otel_livekit.export.destinations.transport import Transport
    from otel_livekit.sessions.content import NO_CONTENT, destination_view

    batch = spans(64)
    assert encode_spans(batch) == sdk_encode(batch).SerializeToString()
    sdk = cpu_us(lambda: sdk_encode(batch).SerializeToString(), 20, args.rounds) / len(batch)
    ours = cpu_us(lambda: encode_spans(batch), 20, args.rounds) / len(batch)
    view = cpu_us(lambda: [destination_view(s, NO_CONTENT, False) for s in batch], 20, args.rounds)
    view /= len(batch)
    print(f"encode a span: SDK encoder {sdk:.1f} µs, otlp_spans {ours:.1f} µs ({sdk / ours:.1f}x less)")
    print(f"no-content view of a span: {view:.1f} µs")

    server, url = backend_process()
    try:
        endpoint = f"{url}/v1/traces"
        body = encode_spans(batch)
        headers = {"content-type": "application/x-protobuf"}
        session = requests.Session()
        client = HttpClient(Transport("traces", endpoint))

        def via_requests() -> None:
            session.post(endpoint, data=body, headers=headers, timeout=5, allow_redirects=False).close()

        def via_client() -> None:
            client.post(endpoint, body, headers, 5)

        via_requests(), via_client()  # connections open
        old = cpu_us(via_requests, args.posts, args.rounds)
        new = cpu_us(via_client, args.posts, args.rounds)
        print(f"post {len(body)} bytes: requests {old:.0f} µs, HttpClient (urllib3) {new:.0f} µs "
              f"({old / new:.1f}x less)")  # fmt: skip
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
