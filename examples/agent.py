"""A LiveKit agent entrypoint with otel_livekit: one line before session.start().

Runs without keys or a LiveKit server in the terminal (the LLM/TTS/STT/VAD are
otel_livekit's offline stand-ins; swap in real plugins for production):

    OTEL_LIVEKIT_BACKEND=console python examples/agent.py console --text

With Langfuse: set LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_HOST and run the same.
"""

from __future__ import annotations

from livekit.agents import AgentServer, AgentSession, JobContext, cli

from otel_livekit import setup_tracing
from otel_livekit.offline import OfflineAgent, OfflineLLM, OfflineSTT, OfflineTTS, OfflineVAD

server = AgentServer()


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    setup_tracing()  # backend and settings from the environment; flushes at job shutdown
    session: AgentSession = AgentSession(
        llm=OfflineLLM(), tts=OfflineTTS(), stt=OfflineSTT(), vad=OfflineVAD()
    )
    await session.start(agent=OfflineAgent(), room=ctx.room)


if __name__ == "__main__":
    cli.run_app(server)
