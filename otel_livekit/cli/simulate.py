"""Simulated voice calls: LiveKit's real ``AgentSession`` with plugins whose latencies and
token counts follow seeded per-provider/model distributions.

Built on :mod:`otel_livekit.offline`'s fakes. Model latencies (LLM TTFT, TTS TTFB, STT
finalisation, endpointing) run in real time so the recorded figures look like production;
``speed`` compresses only the human side — how long the user talks and how long the
agent's reply plays — so a demo of several calls finishes in seconds.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from livekit import rtc
from livekit.agents import (
    Agent,
    AgentSession,
    APIConnectionError,
    APIConnectOptions,
    function_tool,
    llm,
    utils,
)
from livekit.agents.voice.agent_session import SessionConnectOptions

from ..offline import (
    OfflineAudioInput,
    OfflineAudioOutput,
    OfflineLLM,
    OfflineSTT,
    OfflineTTS,
    OfflineVAD,
)
from ..sessions.calls import set_call_attributes

CALL_INDEX: contextvars.ContextVar[int] = contextvars.ContextVar("otel_livekit_call", default=-1)
"""The simulated call a task belongs to (spans started inside it inherit the context)."""


@dataclass(frozen=True)
class Latency:
    """Log-normal around ``median`` with a slow tail: ``tail`` of draws take ``tail_factor``
    times longer (a cold connection, a loaded provider)."""

    median: float
    spread: float = 0.3
    tail: float = 0.06
    tail_factor: float = 3.0

    def draw(self, rng: random.Random) -> float:
        value = rng.lognormvariate(math.log(self.median), self.spread)
        if rng.random() < self.tail:
            value *= self.tail_factor
        return min(value, self.median * 10)


@dataclass(frozen=True)
class Profile:
    """One provider/model: its latency and its throughput (LLM tokens/s, TTS chars/s)."""

    provider: str
    model: str
    latency: Latency
    rate: float = 0.0


LLM_PROFILES = (
    Profile("openai", "gpt-4o-mini", Latency(0.42, 0.35), rate=90.0),
    Profile("openai", "gpt-4.1-mini", Latency(0.55, 0.3), rate=75.0),
    Profile("anthropic", "claude-haiku-4-5", Latency(0.62, 0.3, tail=0.08), rate=70.0),
)
TTS_PROFILES = (
    Profile("cartesia", "sonic-2", Latency(0.11, 0.25), rate=15.0),
    Profile("elevenlabs", "eleven_flash_v2_5", Latency(0.2, 0.3), rate=14.0),
    Profile("openai", "gpt-4o-mini-tts", Latency(0.34, 0.3), rate=15.0),
)
STT_PROFILES = (
    Profile("deepgram", "nova-3", Latency(0.12, 0.3)),
    Profile("openai", "gpt-4o-mini-transcribe", Latency(0.28, 0.3)),
)

SYSTEM_TOKENS = 180
"""Instructions and tool definitions: what every request sends before the conversation."""

CONVERSATION: tuple[tuple[str, str], ...] = (
    ("Hi, I'd like to check on an order I placed last week.",
     "Of course! Could you tell me the order number, please?"),
    ("Sure, it's four five two, one one nine.",
     "Thanks. Order 452119 shipped on Tuesday and should arrive by Friday."),
    ("Can you change the delivery address to my office?",
     "I can do that. What's the new address, including the postcode?"),
    ("It's twelve Market Street, postcode one zero one.",
     "Done: your order now goes to 12 Market Street, 101. Anything else?"),
    ("Will it be sunny for the delivery? What's the weather in Paris?",
     ""),
    ("Actually, can I also get a copy of the invoice?",
     "Sure, I've emailed the invoice to the address on your account."),
    ("How long do refunds usually take?",
     "Refunds are processed within five business days after we receive the item."),
    ("Great, that's all. Thanks a lot!",
     "You're welcome! Have a great day."),
)  # fmt: skip
WEATHER_TURN = 4
"""The line that makes the LLM call the ``lookup_weather`` tool."""


@dataclass(frozen=True)
class CallPlan:
    """What one simulated call does, fixed by the seed before anything runs."""

    index: int
    llm: Profile
    tts: Profile
    stt: Profile
    lines: tuple[int, ...]
    """Indexes into CONVERSATION, one per user turn."""
    interrupt_turn: int | None
    """The agent reply (turn index) the user talks over, if any."""
    error_turn: int | None
    """The turn whose first LLM attempt fails with a retryable error."""
    seed: int

    @property
    def tool_turn(self) -> int | None:
        return self.lines.index(WEATHER_TURN) if WEATHER_TURN in self.lines else None


RUN_ID = uuid.uuid4().hex[:6]
"""Tells this demo's calls from an earlier run's in a backend (Langfuse sessions)."""


def call_ids(plan: CallPlan) -> tuple[str, str]:
    """A simulated call has no room and no participant: its session is the call, its user
    a simulated caller, so a backend lists one session per call with its user."""
    return f"demo-{RUN_ID}-call-{plan.index + 1}", f"demo-caller-{plan.index + 1}"


def plan_calls(calls: int, turns: int, seed: int) -> list[CallPlan]:
    """Deterministic plans: the first call always has a tool call, an interruption and a
    recoverable error so every demo shows them; later calls have them occasionally."""
    rng = random.Random(seed)
    plans = []
    for i in range(calls):
        start = rng.randrange(len(CONVERSATION))
        lines = [(start + k) % len(CONVERSATION) for k in range(turns)]
        if i == 0 and WEATHER_TURN not in lines and turns >= 2:
            lines[1] = WEATHER_TURN
        interrupt = rng.randrange(turns - 1) if turns >= 2 and (i == 0 or rng.random() < 0.3) else None
        error = rng.randrange(turns) if i == 0 or rng.random() < 0.25 else None
        plans.append(
            CallPlan(
                index=i,
                llm=rng.choice(LLM_PROFILES),
                tts=rng.choice(TTS_PROFILES),
                stt=rng.choice(STT_PROFILES),
                lines=tuple(lines),
                interrupt_turn=interrupt,
                error_turn=error,
                seed=rng.randrange(2**31),
            )
        )
    return plans


class _SimLLMStream(llm.LLMStream):
    def __init__(self, sim: SimLLM, **kwargs: Any) -> None:
        super().__init__(sim, **kwargs)
        self._fail = sim.fail_request == sim.requests  # opened by chat(), which counted it

    async def _run(self) -> None:
        sim: SimLLM = self._llm  # type: ignore[assignment]
        ttft = sim.profile.latency.draw(sim.rng)
        if self._fail:
            self._fail = False
            await asyncio.sleep(ttft / 2)
            raise APIConnectionError("simulated: connection reset by the provider", retryable=True)
        req_id = utils.shortuuid("chatcmpl_")
        items = self.chat_ctx.items
        last = items[-1]
        await asyncio.sleep(ttft)
        user_text = (last.text_content or "") if last.type == "message" else ""
        if "weather" in user_text:
            args = json.dumps({"location": "Paris"})
            call_id = utils.shortuuid("call_")
            call = llm.FunctionToolCall(name="lookup_weather", arguments=args, call_id=call_id)
            self._event_ch.send_nowait(
                llm.ChatChunk(id=req_id, delta=llm.ChoiceDelta(role="assistant", tool_calls=[call]))
            )
            text = ""
        else:
            if last.type == "function_call_output":
                text = f"It's {last.output} right now, so the courier should have an easy ride."
            else:
                text = sim.replies.get(user_text, "Sorry, could you say that again?")
            words = text.split(" ")
            for i, word in enumerate(words):
                chunk = word if i == 0 else " " + word
                self._event_ch.send_nowait(
                    llm.ChatChunk(id=req_id, delta=llm.ChoiceDelta(role="assistant", content=chunk))
                )
                await asyncio.sleep(1.3 / sim.profile.rate)
        history = sum(len(it.text_content or "") for it in items if it.type == "message")
        prompt = SYSTEM_TOKENS + history // 4
        completion = max(1, len(text) // 4) if text else 18
        cached = (prompt // 128) * 128 if len(items) > 2 else 0
        usage = llm.CompletionUsage(
            completion_tokens=completion,
            prompt_tokens=prompt,
            prompt_cached_tokens=cached,
            total_tokens=prompt + completion,
        )
        self._event_ch.send_nowait(llm.ChatChunk(id=req_id, usage=usage))


class SimLLM(OfflineLLM):
    """Replies from the script; TTFT and tokens/s from the profile; fails the first attempt
    of request number ``fail_request`` with a retryable connection error."""

    stream_type = _SimLLMStream

    def __init__(self, profile: Profile, rng: random.Random, replies: dict[str, str]) -> None:
        super().__init__(replies, model=profile.model, provider=profile.provider)
        self.profile = profile
        self.rng = rng
        self.fail_request: int | None = None


class SimTTS(OfflineTTS):
    """TTFB from the profile; ``1/rate`` seconds of audio per character."""

    chunk_samples = 2400  # 100 ms

    def __init__(self, profile: Profile, rng: random.Random) -> None:
        super().__init__(seconds_per_char=1.0 / profile.rate, model=profile.model, provider=profile.provider)
        self.profile = profile
        self.rng = rng

    def first_byte_delay(self) -> float:
        return self.profile.latency.draw(self.rng)


class SimSTT(OfflineSTT):
    """Streaming STT: the final transcript arrives the profile's latency after the user's
    speech ends; transcripts come from a queue the call fills turn by turn."""

    confidence = 0.95

    def __init__(self, profile: Profile, rng: random.Random) -> None:
        super().__init__("", final_after=0.05, model=profile.model, provider=profile.provider)
        self.profile = profile
        self.rng = rng
        self.transcripts: list[str] = []

    def utterance(self, speech: float, silence: float) -> tuple[str, float, float]:
        text = self.transcripts.pop(0) if self.transcripts else "hello?"
        return text, speech, self.profile.latency.draw(self.rng)


class SimAudioOutput(OfflineAudioOutput):
    """Plays the agent's audio ``speed`` times faster than real time."""

    def __init__(self, speed: float) -> None:
        super().__init__()
        self.speed = speed

    def flush(self) -> None:
        super(OfflineAudioOutput, self).flush()
        if not self._pushed:
            return
        pushed = self._pushed
        delay = max(0.0, pushed / self.speed - (time.time() - (self._started or time.time())))

        def done() -> None:
            self._pushed, self._started, self._handle = 0.0, None, None
            self.on_playback_finished(playback_position=pushed, interrupted=False)

        self._handle = asyncio.get_event_loop().call_later(delay, done)


class SimAudioInput(OfflineAudioInput):
    """The caller's microphone: speech is pushed ``speed`` times faster than real time,
    the silence after it in real time (endpointing is measured on that silence)."""

    def __init__(self, speed: float) -> None:
        super().__init__()
        self.speed = speed

    async def speak(self, seconds: float) -> None:
        await self._push(seconds, loud=True, pace=0.01 / self.speed)

    async def pause(self, seconds: float) -> None:
        await self._push(seconds, loud=False, pace=0.01)

    async def _push(self, seconds: float, *, loud: bool, pace: float) -> None:
        sample = (3000).to_bytes(2, "little", signed=True) if loud else b"\x00\x00"
        for _ in range(round(seconds * 100)):
            self._ch.send_nowait(
                rtc.AudioFrame(data=sample * 160, sample_rate=16000, num_channels=1, samples_per_channel=160)
            )
            await asyncio.sleep(pace)


TOOL_LATENCY = Latency(0.25, 0.4)
"""A weather API round trip."""


class SimAgent(Agent):
    """The caller's agent: one tool, ``lookup_weather``, that takes an API's time."""

    def __init__(self, rng: random.Random) -> None:
        tools = [self._weather_tool(rng)]
        super().__init__(instructions="You are a helpful order-support agent.", tools=tools)

    @staticmethod
    def _weather_tool(rng: random.Random) -> Any:
        @function_tool
        async def lookup_weather(location: str) -> str:
            """Look up the weather.

            Args:
                location: the city
            """
            await asyncio.sleep(TOOL_LATENCY.draw(rng))
            return f"sunny in {location}"

        return lookup_weather


@dataclass
class CallResult:
    plan: CallPlan
    replies: int = 0
    interrupted: int = 0
    errors: list[str] = field(default_factory=list)


async def run_call(
    plan: CallPlan,
    *,
    speed: float = 4.0,
    on_turn: Callable[[CallPlan, int], None] | None = None,
) -> CallResult:
    """One call: for each planned line the user speaks, pauses, and hears the reply (or
    talks over it on ``interrupt_turn``). Returns once the session is closed."""
    CALL_INDEX.set(plan.index)
    rng = random.Random(plan.seed)
    replies = {CONVERSATION[i][0]: CONVERSATION[i][1] for i in plan.lines}
    sim_llm = SimLLM(plan.llm, rng, replies)
    sim_stt = SimSTT(plan.stt, rng)
    session: AgentSession[None] = AgentSession(
        llm=sim_llm,
        tts=SimTTS(plan.tts, rng),
        stt=sim_stt,
        vad=OfflineVAD(min_silence=0.25),
        turn_handling={
            "turn_detection": "vad",
            "endpointing": {"min_delay": rng.choice((0.3, 0.4, 0.5)), "max_delay": 3.0},
            "preemptive_generation": {"enabled": False},
            "interruption": {"min_duration": 0.4, "resume_false_interruption": False},
        },
        conn_options=SessionConnectOptions(
            llm_conn_options=APIConnectOptions(max_retry=2, retry_interval=0.3, timeout=10.0)
        ),
        aec_warmup_duration=None,
        user_away_timeout=None,
        session_close_transcript_timeout=0.1,
    )
    mic = SimAudioInput(speed)
    session.input.audio = mic
    session.output.audio = SimAudioOutput(speed)
    result = CallResult(plan)

    def on_item(ev: Any) -> None:
        item = ev.item
        if getattr(item, "type", None) == "message" and item.role == "assistant":
            result.replies += 1
            result.interrupted += bool(item.interrupted)
            if on_turn is not None:
                on_turn(plan, result.replies)

    def on_error(ev: Any) -> None:
        result.errors.append(type(ev.error).__name__)

    session.on("conversation_item_added", on_item)
    session.on("error", on_error)
    session_id, user_id = call_ids(plan)
    set_call_attributes(session, session_id=session_id, user_id=user_id)
    await session.start(SimAgent(rng))
    for turn, line in enumerate(plan.lines):
        if turn == plan.error_turn:
            sim_llm.fail_request = sim_llm.requests + 1
        expected = result.replies + 1
        if turn == 0 or turn - 1 != plan.interrupt_turn:  # after a barge-in the user is mid-sentence
            await mic.pause(0.2)
            sim_stt.transcripts.append(CONVERSATION[line][0])
            await mic.speak(_speech_seconds(CONVERSATION[line][0], rng))
        if turn == plan.interrupt_turn and turn + 1 < len(plan.lines):
            await _until(lambda: session.agent_state == "speaking", mic, seconds=15.0)
            nxt = CONVERSATION[plan.lines[turn + 1]][0]
            sim_stt.transcripts.append(nxt)
            await mic.speak(max(0.9, _speech_seconds(nxt, rng)))  # talks over the reply
            continue
        await _until(functools.partial(_at_least, result, expected), mic, seconds=15.0 + 30.0 / speed)
        await _until(lambda: session.agent_state == "listening", None, seconds=5.0)
        await asyncio.sleep(rng.uniform(0.3, 1.2) / speed)  # the caller thinks
    await session.aclose()
    return result


def _at_least(result: CallResult, replies: int) -> bool:
    return result.replies >= replies


def _speech_seconds(text: str, rng: random.Random) -> float:
    return len(text.split()) / rng.uniform(2.3, 3.0)  # about 2.5 words per second


async def _until(done: Callable[[], bool], mic: SimAudioInput | None, *, seconds: float) -> None:
    """Wait for ``done``; meanwhile the microphone keeps sending (real-time) silence."""
    end = time.monotonic() + seconds
    while not done() and time.monotonic() < end:
        if mic is not None:
            await mic.pause(0.05)
        else:
            await asyncio.sleep(0.02)
