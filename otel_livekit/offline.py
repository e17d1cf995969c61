"""A real LiveKit ``AgentSession`` run fully offline: in-process LLM, TTS, STT and VAD
plugins with controlled latencies and token counts, and fake audio I/O.

The framework's own code paths emit the metrics events and spans, so the demo and the
tests see what a production agent emits — without a LiveKit server or API keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from livekit import rtc
from livekit.agents import (
    Agent,
    AgentSession,
    APIConnectOptions,
    function_tool,
    llm,
    stt,
    tts,
    utils,
    vad,
)
from livekit.agents.testing import fake_job_context
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr
from livekit.agents.voice.io import AudioInput, AudioOutput, AudioOutputCapabilities

REPLIES = {
    "hello": "Hi there! How can I help you today?",
    "bye": "Goodbye, have a nice day.",
}


class _Named:
    """``model``/``provider`` as LiveKit's metrics metadata reports them."""

    _model: str
    _provider: str

    @property
    def model(self) -> str:
        return self._model

    @property
    def provider(self) -> str:
        return self._provider


TOOL_TRIGGERS = {"weather": "lookup_weather", "flight": "book_flight"}


class _OfflineLLMStream(llm.LLMStream):
    async def _run(self) -> None:
        fake: OfflineLLM = self._llm  # type: ignore[assignment]
        last = self.chat_ctx.items[-1]
        req_id = utils.shortuuid("chatcmpl_")
        await asyncio.sleep(fake.ttft)
        user_text = (last.text_content or "") if last.type == "message" else ""
        tool = next((t for w, t in fake.tool_triggers.items() if w in user_text), None)
        if tool is None and last.type == "function_call_output" and fake.tool_rounds > 1:
            rounds = 0  # tool outputs since the user's message: one more round until enough
            for item in reversed(self.chat_ctx.items):
                if item.type == "message" and item.role == "user":
                    break
                rounds += item.type == "function_call_output"
            if rounds < fake.tool_rounds:
                tool = last.name
        if tool is not None:
            calls = [
                llm.FunctionToolCall(name=tool, arguments=json.dumps({"location": where}),
                                     call_id=utils.shortuuid("call_"))
                for where in fake.tool_locations
            ]  # fmt: skip
            delta = llm.ChoiceDelta(role="assistant", tool_calls=calls)
            self._event_ch.send_nowait(llm.ChatChunk(id=req_id, delta=delta))
        else:
            if last.type == "function_call_output":
                text = f"The weather is {last.output}"
            else:
                text = fake.replies.get(user_text, "I did not catch that.")
            for i in range(0, len(text), 3):
                delta = llm.ChoiceDelta(role="assistant", content=text[i : i + 3])
                self._event_ch.send_nowait(llm.ChatChunk(id=req_id, delta=delta))
                await asyncio.sleep(fake.first_token_pause if i == 0 else 0.002)
        usage = llm.CompletionUsage(
            completion_tokens=fake.completion_tokens,
            prompt_tokens=fake.prompt_tokens,
            prompt_cached_tokens=fake.cached_tokens,
            total_tokens=fake.prompt_tokens + fake.completion_tokens,
        )
        self._event_ch.send_nowait(llm.ChatChunk(id=req_id, usage=usage))


class OfflineLLM(_Named, llm.LLM):
    """Streams a canned reply in 3-character chunks after ``ttft`` seconds; calls a tool
    when the user's text contains one of ``tool_triggers`` (``book_flight`` always fails)."""

    stream_type: type[llm.LLMStream] = _OfflineLLMStream
    """The stream ``chat`` opens (a simulation brings its own)."""

    def __init__(
        self,
        replies: dict[str, str] | None = None,
        *,
        ttft: float = 0.05,
        prompt_tokens: int = 40,
        completion_tokens: int = 8,
        cached_tokens: int = 5,
        tool_triggers: dict[str, str] | None = None,
        tool_rounds: int = 1,
        tool_locations: Sequence[str] = ("Paris",),
        first_token_pause: float = 0.002,
        model: str = "fake-gpt",
        provider: str = "openai",
    ) -> None:
        super().__init__()
        self.replies = dict(REPLIES if replies is None else replies)
        self.ttft = ttft
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.cached_tokens = cached_tokens
        self.tool_triggers = dict(TOOL_TRIGGERS if tool_triggers is None else tool_triggers)
        self.tool_rounds = tool_rounds
        """Tool calls in a row before the reply (each after the previous one's output)."""
        self.tool_locations = tuple(tool_locations)
        """One tool call per location in the same response: LiveKit runs them in parallel."""
        self.first_token_pause = first_token_pause
        """Pause after the first chunk: a slow first sentence."""
        self._model = model
        self._provider = provider
        self.requests = 0

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        self.requests += 1
        return self.stream_type(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)


class OfflineTTS(_Named, tts.TTS):
    """Non-streaming TTS: first audio after ``ttfb`` seconds, ``seconds_per_char`` of
    silence per character (LiveKit wraps it in its StreamAdapter)."""

    chunk_samples = 240
    """Audio pushed per step (10 ms at 24 kHz)."""

    def __init__(
        self,
        *,
        ttfb: float = 0.03,
        seconds_per_char: float = 0.01,
        model: str = "fake-voice",
        provider: str = "fake-tts-co",
    ) -> None:
        super().__init__(capabilities=tts.TTSCapabilities(streaming=False), sample_rate=24000, num_channels=1)
        self.ttfb = ttfb
        self.seconds_per_char = seconds_per_char
        self._model = model
        self._provider = provider

    def first_byte_delay(self) -> float:
        """Seconds before the first audio of a request (a simulation draws it per request)."""
        return self.ttfb

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _OfflineChunkedStream(tts=self, input_text=text, conn_options=conn_options)


class _OfflineChunkedStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        fake: OfflineTTS = self._tts  # type: ignore[assignment]
        output_emitter.initialize(
            request_id=utils.shortuuid("tts_"),
            sample_rate=24000,
            num_channels=1,
            mime_type="audio/pcm",
        )
        await asyncio.sleep(fake.first_byte_delay())
        n_samples = int(24000 * fake.seconds_per_char * max(1, len(self.input_text)))
        for start in range(0, n_samples, fake.chunk_samples):
            output_emitter.push(b"\x00\x00" * min(fake.chunk_samples, n_samples - start))
            await asyncio.sleep(0)
        output_emitter.flush()


class OfflineAudioOutput(AudioOutput):
    """'Plays' audio ten times faster than real time and reports playback like a room;
    ``playback_delay`` holds the start of playback back (an avatar's leg)."""

    def __init__(self, playback_delay: float = 0.0) -> None:
        super().__init__(label="OfflineOut", capabilities=AudioOutputCapabilities(pause=False))
        self.playback_delay = playback_delay
        self._pushed = 0.0
        self._started: float | None = None
        self._handle: asyncio.TimerHandle | None = None

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        self._pushed += frame.duration
        if self._started is None:
            self._started = time.time()
            if self.playback_delay > 0:
                loop = asyncio.get_running_loop()
                loop.call_later(self.playback_delay, lambda: self.on_playback_started(created_at=time.time()))
            else:
                self.on_playback_started(created_at=self._started)

    def flush(self) -> None:
        super().flush()
        if not self._pushed:
            return
        pushed = self._pushed
        delay = max(0.0, self.playback_delay + pushed / 10 - (time.time() - (self._started or time.time())))

        def done() -> None:
            self._pushed, self._started, self._handle = 0.0, None, None
            self.on_playback_finished(playback_position=pushed, interrupted=False)

        self._handle = asyncio.get_event_loop().call_later(delay, done)

    def clear_buffer(self) -> None:
        if not self._pushed:
            return
        if self._handle:
            self._handle.cancel()
        pos = min(self._pushed, time.time() - (self._started or time.time()))
        self._pushed, self._started, self._handle = 0.0, None, None
        self.on_playback_finished(playback_position=pos, interrupted=True)


class OfflineAudioInput(AudioInput):
    """A microphone fed by the test: 10 ms frames at 16 kHz, loud (constant) or silent."""

    def __init__(self) -> None:
        super().__init__(label="OfflineIn")
        self._ch = utils.aio.Chan[rtc.AudioFrame]()

    async def __anext__(self) -> rtc.AudioFrame:
        return await self._ch.__anext__()

    async def push_seconds(self, seconds: float, *, loud: bool) -> None:
        sample = (3000).to_bytes(2, "little", signed=True) if loud else b"\x00\x00"
        for _ in range(round(seconds * 100)):
            frame = rtc.AudioFrame(
                data=sample * 160, sample_rate=16000, num_channels=1, samples_per_channel=160
            )
            self._ch.send_nowait(frame)
            await asyncio.sleep(0.01)  # paced like a microphone


class OfflineVAD(vad.VAD):
    """Energy-threshold VAD: every 10 ms frame is one inference."""

    def __init__(self, *, min_silence: float = 0.3) -> None:
        super().__init__(capabilities=vad.VADCapabilities(update_interval=0.1))
        self.min_silence = min_silence

    @property
    def model(self) -> str:
        return "energy"

    @property
    def provider(self) -> str:
        return "fake-vad"

    def stream(self) -> vad.VADStream:
        return _OfflineVADStream(self)


class _OfflineVADStream(vad.VADStream):
    async def _main_task(self) -> None:
        fake: OfflineVAD = self._vad  # type: ignore[assignment]
        speaking = False
        speech_dur = silence_dur = 0.0
        idx = 0
        async for frame in self._input_ch:
            if isinstance(frame, vad.VADStream._FlushSentinel):
                continue
            idx += frame.samples_per_channel
            loud = any(frame.data[:4])
            if loud:
                speech_dur += frame.duration
                silence_dur = 0.0
            else:
                silence_dur += frame.duration
            base: dict[str, Any] = dict(
                samples_index=idx,
                timestamp=time.time(),
                speech_duration=speech_dur,
                silence_duration=silence_dur,
                frames=[frame],
            )
            self._event_ch.send_nowait(
                vad.VADEvent(
                    type=vad.VADEventType.INFERENCE_DONE,
                    probability=1.0 if loud else 0.0,
                    inference_duration=0.0005,
                    speaking=speaking,
                    **base,
                )
            )
            if loud and not speaking and speech_dur >= 0.05:
                speaking = True
                self._event_ch.send_nowait(
                    vad.VADEvent(type=vad.VADEventType.START_OF_SPEECH, speaking=True, **base)
                )
            elif not loud and speaking and silence_dur >= fake.min_silence:
                speaking = False
                self._event_ch.send_nowait(
                    vad.VADEvent(type=vad.VADEventType.END_OF_SPEECH, speaking=False, **base)
                )
                speech_dur = 0.0


class OfflineSTT(_Named, stt.STT):
    """Streaming STT: a final transcript ``final_after`` seconds into the silence after
    speech, then a RECOGNITION_USAGE event with the audio duration."""

    def __init__(
        self,
        transcript: str = "bye",
        *,
        final_after: float = 0.2,
        streaming: bool = True,
        latency: float = 0.15,
        model: str = "fake-nova",
        provider: str = "fake-stt-co",
    ) -> None:
        caps = stt.STTCapabilities(streaming=streaming, interim_results=False)
        super().__init__(capabilities=caps)
        self.latency = latency
        self.transcript = transcript
        self.final_after = final_after
        self._model = model
        self._provider = provider

    async def _recognize_impl(
        self,
        buffer: Any,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.SpeechEvent:
        """Batch recognition (``streaming=False``: LiveKit segments with the VAD)."""
        await asyncio.sleep(self.latency)
        alt = stt.SpeechData(language="en", text=self.transcript, confidence=self.confidence)  # type: ignore[arg-type]
        return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives=[alt])

    confidence = 0.97

    def utterance(self, speech: float, silence: float) -> tuple[str, float, float]:
        """An utterance ended: its transcript, the audio seconds billed, and how long the
        final transcript takes. Here: at once, the whole utterance billed."""
        return self.transcript, speech + silence, 0.0

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.RecognizeStream:
        return _OfflineRecognizeStream(stt=self, conn_options=conn_options)


class _OfflineRecognizeStream(stt.RecognizeStream):
    """Speech is any non-zero sample; ``final_after`` seconds of silence end an utterance,
    whose final transcript arrives after the STT's ``utterance()`` delay."""

    async def _run(self) -> None:
        fake: OfflineSTT = self._stt  # type: ignore[assignment]
        speaking = False
        loud_dur = silence = 0.0
        pending: set[asyncio.Task[None]] = set()
        async for frame in self._input_ch:
            if isinstance(frame, stt.RecognizeStream._FlushSentinel):
                continue
            if any(frame.data[:4]):
                loud_dur += frame.duration
                silence = 0.0
                if not speaking:
                    speaking = True
                    self._event_ch.send_nowait(stt.SpeechEvent(type=stt.SpeechEventType.START_OF_SPEECH))
                continue
            if not speaking:
                continue
            silence += frame.duration
            if silence < fake.final_after:
                continue
            speaking = False
            text, audio, delay = fake.utterance(loud_dur, silence)
            loud_dur = 0.0
            if delay <= 0:
                self._send_final(text, audio)
                continue
            task = asyncio.create_task(self._final_later(text, audio, delay))
            pending.add(task)
            task.add_done_callback(pending.discard)
        for task in list(pending):
            await task

    async def _final_later(self, text: str, audio: float, delay: float) -> None:
        await asyncio.sleep(delay)
        self._send_final(text, audio)

    def _send_final(self, text: str, audio: float) -> None:
        fake: OfflineSTT = self._stt  # type: ignore[assignment]
        rid = utils.shortuuid("stt_")
        alt = stt.SpeechData(language="en", text=text, confidence=fake.confidence)  # type: ignore[arg-type]
        kind = stt.SpeechEventType
        for ev in (
            stt.SpeechEvent(type=kind.FINAL_TRANSCRIPT, request_id=rid, alternatives=[alt]),
            stt.SpeechEvent(type=kind.END_OF_SPEECH, request_id=rid),
            stt.SpeechEvent(type=kind.RECOGNITION_USAGE, request_id=rid,
                            recognition_usage=stt.RecognitionUsage(audio_duration=audio)),
        ):  # fmt: skip
            self._event_ch.send_nowait(ev)


@function_tool
async def lookup_weather(location: str) -> str:
    """Look up the weather.

    Args:
        location: the city
    """
    return f"sunny in {location}"


@function_tool
async def book_flight(location: str) -> str:
    """Book a flight (always fails: exercises tool errors).

    Args:
        location: the destination
    """
    raise llm.ToolError(f"no flights to {location}")


class OfflineAgent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are a test agent.", tools=[lookup_weather, book_flight])


@dataclass
class OfflineRun:
    """What a finished offline session leaves behind."""

    session: AgentSession
    assistant_messages: int = 0
    report: dict[str, Any] = field(default_factory=dict)


def make_session(
    *,
    llm_: OfflineLLM | None = None,
    tts_: OfflineTTS | None = None,
    stt_: OfflineSTT | None = None,
    endpointing_delay: float = 0.1,
    preemptive_generation: bool = False,
    playback_delay: float = 0.0,
    vad_silence: float = 0.3,
) -> tuple[AgentSession, OfflineAudioInput]:
    session: AgentSession = AgentSession(
        llm=llm_ or OfflineLLM(),
        tts=tts_ or OfflineTTS(),
        stt=stt_ or OfflineSTT(),
        vad=OfflineVAD(min_silence=vad_silence),
        turn_handling={
            "turn_detection": "vad",
            "endpointing": {"min_delay": endpointing_delay, "max_delay": max(1.0, endpointing_delay)},
            "preemptive_generation": {"enabled": preemptive_generation},
        },
        aec_warmup_duration=None,
        user_away_timeout=None,
        session_close_transcript_timeout=0.1,
    )
    audio_in = OfflineAudioInput()
    session.input.audio = audio_in
    session.output.audio = OfflineAudioOutput(playback_delay)
    return session, audio_in


async def run_offline_session(
    *,
    text_turns: Sequence[str] = ("hello", "what's the weather?"),
    audio_turns: int = 1,
    llm_: OfflineLLM | None = None,
    tts_: OfflineTTS | None = None,
    stt_: OfflineSTT | None = None,
    in_job: bool = True,
    job_id: str = "job-offline",
    room_name: str = "offline-room",
    interrupted_say: str | None = None,
    agent: Agent | None = None,
    endpointing_delay: float = 0.1,
    preemptive_generation: bool = False,
    playback_delay: float = 0.0,
    vad_silence: float = 0.3,
    before_start: Callable[[AgentSession], Any] | None = None,
    before_close: Callable[[AgentSession], Any] | None = None,
    after_close: Callable[[AgentSession], Awaitable[None] | None] | None = None,
) -> OfflineRun:
    """Run text turns (``session.run``), audio turns (VAD + streaming STT), then, with
    ``interrupted_say``, a ``session.say()`` interrupted mid-playout; close.

    ``before_start`` runs on the new session before ``session.start()`` (where an
    instrumentation hook attaches); ``after_close`` runs inside the job context after
    ``session.aclose()``, like a job's ``on_session_end``.
    """
    cm: Any = fake_job_context(job_id=job_id) if in_job else contextlib.nullcontext(None)
    with cm as job_ctx:
        if job_ctx is not None:  # the fake job's room is not connected: name it here
            job_ctx.job.room.name = room_name
        session, audio_in = make_session(llm_=llm_, tts_=tts_, stt_=stt_, endpointing_delay=endpointing_delay,
                                         preemptive_generation=preemptive_generation,
                                         playback_delay=playback_delay, vad_silence=vad_silence)
        run = OfflineRun(session)

        def count(ev: Any) -> None:
            item = ev.item
            if getattr(item, "type", None) == "message" and item.role == "assistant":
                run.assistant_messages += 1

        session.on("conversation_item_added", count)
        if before_start is not None:
            before_start(session)
        await session.start(agent or OfflineAgent())
        for text in text_turns:
            await session.run(user_input=text)
        for _ in range(audio_turns):
            expected = run.assistant_messages + 1
            await audio_in.push_seconds(0.3, loud=False)
            await audio_in.push_seconds(0.6, loud=True)
            await audio_in.push_seconds(max(0.8, vad_silence + 0.3), loud=False)
            for _ in range(200):  # the reply is spoken within 10 s
                if run.assistant_messages >= expected:
                    break
                await asyncio.sleep(0.05)
        if interrupted_say:
            handle = session.say(interrupted_say)
            for _ in range(100):  # interrupt once audio is playing
                if session.agent_state == "speaking":
                    break
                await asyncio.sleep(0.01)
            handle.interrupt()
            await handle
        if before_close is not None:
            before_close(session)
        await session.aclose()
        if after_close is not None:
            maybe = after_close(session)
            if maybe is not None:
                await maybe
        if job_ctx is not None:
            report = job_ctx.make_session_report(session)
            run.report = report.to_dict(include_chat_history=False, include_events=False)
    return run
