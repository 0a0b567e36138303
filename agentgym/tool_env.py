"""`ToolEnv`: a text env where the agent calls tools and ends the episode with an answer.

A subclass supplies tasks (`sample_task`), how a task is put to the agent (`task_prompt`) and how an answer
is scored (`score`); tool calling, parsing and error observations are handled here, identically for
every tool env. In the XML format the tool result continues the assistant's own message
(``<python>…</python><result>…</result>``, as in ARPO); in the Hermes format it is a `tool` message.
"""

from __future__ import annotations

from typing import Any

from agentgym.env import EnvLimits, TextEnv
from agentgym.parsing import ToolCallParser, make_parser
from agentgym.tools import Tool, ToolSet
from agentgym.trajectory import Observation, ToolCallRecord

INLINE = "inline"  # observation role: the text continues the assistant's message


class ToolEnv(TextEnv):
    """Base for tool-use tasks with a verifiable final answer."""

    instructions = "Solve the task. Use the tools when they help, then give your final answer."

    def __init__(
        self,
        tools: list[Tool],
        tool_format: str = "xml",
        limits: EnvLimits | dict | None = None,
        render_mode: str | None = None,
        max_calls_per_turn: int = 4,
        tool_timeout_s: float = 30.0,
        no_answer_reward: float = 0.0,
    ):
        super().__init__(limits=limits, render_mode=render_mode)
        self.toolset = ToolSet(tools, default_timeout_s=tool_timeout_s)
        self.tool_format = tool_format
        self.parser: ToolCallParser = make_parser(tool_format, self.toolset.names())
        self.max_calls_per_turn = max_calls_per_turn
        self.no_answer_reward = no_answer_reward
        self.task: dict[str, Any] = {}

    # ---- to implement -----------------------------------------------------------------------------
    def sample_task(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """Pick a task using `self.np_random` (seeded) or ``options["task"]``."""
        raise NotImplementedError

    def task_prompt(self, task: dict[str, Any]) -> str:
        return str(task["question"])

    def score(self, answer: str) -> float:
        """Reward for a final answer to `self.task`."""
        raise NotImplementedError

    # ---- TextEnv ----------------------------------------------------------------------------------
    def system_prompt(self) -> str:
        return f"{self.instructions}\n\n{self.parser.describe(self.toolset.schemas())}"

    def stop_strings(self) -> list[str]:
        return self.parser.stop_strings()

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        if options and "task" in options:
            self.task = dict(options["task"])
        else:
            self.task = self.sample_task(options)
        obs = self.task_prompt(self.task)
        return obs, {"task": self.task}

    def step(self, action: str | bytes) -> tuple[str, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)
        if truncated and not terminated:  # ran out of turns without answering
            reward += self.no_answer_reward
        return obs, reward, terminated, truncated, info

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        parsed = self.parser.parse(action)
        role = INLINE if self.tool_format == "xml" else "tool"
        if parsed.errors:
            err = parsed.errors[0]
            record = ToolCallRecord(name="(parse)", error_type=err.kind, error=err.message, output=err.message)  # type: ignore[arg-type]
            text = f"Error: {err.message}"
            return self._reply(text, role, [record])
        if parsed.calls:
            records = []
            for call in parsed.calls[: self.max_calls_per_turn]:
                records.append(self.toolset.call(call))
            outputs = [self.parser.format_result(c, r.output) for c, r in zip(parsed.calls, records)]
            if len(parsed.calls) > self.max_calls_per_turn:
                outputs.append(f"[only the first {self.max_calls_per_turn} tool calls of a message are run]")
            return self._reply("\n".join(outputs), role, records)
        if parsed.answer is not None:
            reward = float(self.score(parsed.answer))
            info = {"tool_calls": [], "answer": parsed.answer, "correct": reward > 0,
                    "observation": Observation(text="", role=role).model_dump()}
            return "", reward, True, info
        hint = "No tool call or final answer found. " + self.parser.describe(self.toolset.schemas())
        return self._reply(hint, "user", [])

    def _reply(self, text: str, role: str, records: list[ToolCallRecord]) -> tuple[str, float, bool, dict[str, Any]]:
        info = {"tool_calls": [r.model_dump() for r in records],
                "observation": Observation(text=text, role=role).model_dump()}
        return text, 0.0, False, info
