"""Acting on a slow turn while the call runs: log where the wait went, tag the turn's trace,
and hand the call to an agent on a faster LLM when the model keeps being the slow part.

    from examples.slow_turns import watch_slow_turns
    watch_slow_turns(fast_agent=lambda: MyAgent(llm=openai.LLM(model="gpt-4o-mini")))

``on_turn_budget`` calls back on the agent's event loop with each reply's budget (the same
numbers as the dashboards, the report and the ``agent_turn`` span), so keep it quick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from livekit.agents import Agent

from otel_livekit import TurnBudget, on_turn_budget

logger = logging.getLogger("slow_turns")

MODEL_PARTS = ("llm_ttft", "tool_llm", "first_sentence")
"""Parts a faster LLM shortens."""


def watch_slow_turns(fast_agent: Callable[[], Agent], strikes: int = 2) -> Callable[[], None]:
    """After ``strikes`` slow turns in a row dominated by the LLM, switch the call to
    ``fast_agent()``. Returns the function that stops watching."""
    in_a_row: dict[int, int] = {}  # per session (id of the AgentSession)

    def react(budget: TurnBudget) -> None:
        if not budget.slow:
            in_a_row.pop(id(budget.session), None)
            return
        parts = ", ".join(f"{part} {seconds:.2f}s" for part, seconds in budget.parts.items())
        logger.warning("slow turn %s: %.2fs (%s), mostly %s", budget.speech_id, budget.total, parts,
                       budget.dominant)  # fmt: skip
        if budget.span is not None:  # find these turns in the trace backend
            budget.span.set_attribute("app.slow_turn.action", "logged")
        if budget.dominant not in MODEL_PARTS or budget.session is None:
            return
        strikes_now = in_a_row[id(budget.session)] = in_a_row.get(id(budget.session), 0) + 1
        if strikes_now >= strikes:
            in_a_row.pop(id(budget.session), None)
            budget.session.update_agent(fast_agent())

    return on_turn_budget(react)
