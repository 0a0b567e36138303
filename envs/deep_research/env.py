"""The deep-research workspace (IterResearch): a Markovian research loop whose memory is an evolving report.

Each round the agent sees only ``(question, report, last action, last observation)`` and answers with
``<think>…</think><report>…</report>`` plus exactly one action: ``<search>``, ``<open>``, ``<python>``
(XML) or one ``<tool_call>`` (Hermes), or ``<answer>``. The env runs the action and rebuilds the whole
prompt: every step returns ``info["rebuild_context"] = True`` with ``info["messages"]``, so the rollout
engine stores each round as its own node whose ``prefix_ids`` are the exact tokens of that workspace, and
the token budget applies per round (``EnvLimits.max_tokens_per_episode`` restarts with each rebuilt
context). The report is capped at `max_report_chars` (longer reports are cut and the agent is told);
``Observation.memory`` carries the report so the viewer shows it round by round. Rounds are capped at
`max_rounds` (at most 2048); the last round's workspace asks for the answer.

`DeepResearchReActEnv` is the mono-context comparison: the same tools and questions, one growing context.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from agentgym.env import EnvLimits, TextEnv
from agentgym.envs.deep_research.python_tool import SandboxedPython
from agentgym.envs.deep_research.workspace import INSTRUCTIONS, parse_decision, render_workspace
from agentgym.envs.web_search.env import WebSearchEnv, score_answer
from agentgym.envs.web_search.search_tools import SearchTools
from agentgym.envs.web_search.sources import SearchSetup
from agentgym.parsing import make_parser
from agentgym.tools import Tool, ToolSet
from agentgym.trajectory import Observation, ToolCallRecord

MAX_ROUNDS = 2048
SEARCH_OPTIONS = ("corpus", "world_pages", "world_seed", "background", "questions", "index", "engine", "split",
                  "index_cache", "hops")


class DeepResearchEnv(TextEnv):
    can_fork: ClassVar[bool] = True  # fork() shares the corpus and index, copies the episode
    def __init__(self, tool_format: str = "xml", limits: EnvLimits | dict | None = None, render_mode: str | None = None,
                 max_rounds: int = 32, round_tokens: int = 1024, max_report_chars: int = 3000,
                 python: bool = True, sandbox: dict | None = None, reward: str = "em", page_chars: int = 1500,
                 tool_timeout_s: float = 30.0, **search: Any):
        unknown = set(search) - set(SEARCH_OPTIONS)
        if unknown:
            raise TypeError(f"DeepResearchEnv got unknown option(s) {sorted(unknown)}")
        if not 1 <= max_rounds <= MAX_ROUNDS:
            raise ValueError(f"max_rounds must be between 1 and {MAX_ROUNDS}, got {max_rounds}")
        if reward not in ("em", "f1"):
            raise ValueError(f"reward must be 'em' or 'f1', got {reward!r}")
        if max_report_chars < 100:
            raise ValueError(f"max_report_chars must be at least 100, got {max_report_chars}")
        limits = limits or EnvLimits(max_turns=max_rounds, max_tokens_per_turn=round_tokens,
                                     max_tokens_per_episode=round_tokens)
        super().__init__(limits=limits, render_mode=render_mode)
        self.max_rounds = self.limits.max_turns
        self.max_report_chars, self.reward_kind, self.tool_format = max_report_chars, reward, tool_format
        self.sources = SearchSetup(**search)
        self.search_tools = SearchTools(self.sources.engine, page_chars=page_chars)
        self.python = SandboxedPython(sandbox) if python else None
        self.tool_timeout_s = tool_timeout_s
        self.toolset = self._toolset()
        self.parser = make_parser(tool_format, self.toolset.names())
        self.task: dict[str, Any] = {}
        self.report = ""
        self.episode_calls: list[dict[str, Any]] = []

    def _toolset(self) -> ToolSet:
        tools: list[Tool] = self.search_tools.tools() + ([self.python.tool()] if self.python else [])
        return ToolSet(tools, default_timeout_s=self.tool_timeout_s)

    @property
    def expert(self) -> str | None:
        return "agentgym.envs.deep_research.expert:deep_research_expert" if self.tool_format == "xml" else None

    def system_prompt(self) -> str:
        return f"{INSTRUCTIONS}\n\n{self.parser.describe(self.toolset.schemas())}"

    def stop_strings(self) -> list[str]:
        return self.parser.stop_strings()

    # ---- episode ----------------------------------------------------------------------------------
    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        if self.python is not None:
            self.python.close()
        self.task = dict(options["task"]) if options and "task" in options else self.sources.sample_question(self.np_random)
        self.report, self.episode_calls = "", []
        obs = render_workspace(self.task["question"], "", "", "", 1, self.max_rounds, [])
        return obs, {"task": self.task, "observation": Observation(text=obs, role="user", memory="").model_dump(),
                     "round": 1}

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        decision = parse_decision(action)
        notes: list[str] = []
        if decision.report is None:
            notes.append("your message had no <report></report>; the previous report was kept")
        else:
            self.report = decision.report
            if len(self.report) > self.max_report_chars:
                notes.append(f"your report had {len(self.report)} characters; it was cut to the limit of "
                             f"{self.max_report_chars}")
                self.report = self.report[: self.max_report_chars]
        parsed = self.parser.parse(decision.action_text)
        records: list[ToolCallRecord] = []
        last_action, observation = decision.action_text[-2000:], ""
        if parsed.errors:
            err = parsed.errors[0]
            records.append(ToolCallRecord(name="(parse)", error_type=err.kind, error=err.message,  # type: ignore[arg-type]
                                          output=f"Error: {err.message}"))
            observation = f"Error: {err.message}"
        elif parsed.calls:
            call = parsed.calls[0]
            if len(parsed.calls) > 1:
                notes.append(f"only the first of your {len(parsed.calls)} tool calls was run: one action per round")
            records.append(self.toolset.call(call))
            observation = records[0].output
            tag = call.name if self.tool_format == "xml" else "tool_call"
            last_action = f"<{tag}>{call.raw}</{tag}>"
        elif parsed.answer is not None:
            self.episode_calls += [r.model_dump() for r in records]
            reward, score_info = score_answer(parsed.answer, self.task, self.episode_calls, self.reward_kind)
            info = {"tool_calls": [], "answer": parsed.answer, "correct": reward > 0, "report": self.report,
                    "round": self.turn, **score_info,
                    "observation": Observation(text="", role="user", memory=self.report).model_dump()}
            return "", reward, True, info
        else:
            observation = "No action found. End your message with one tool call or <answer></answer>."
        dumped = [r.model_dump() for r in records]
        self.episode_calls += dumped
        next_round = self.turn + 1
        workspace = render_workspace(self.task["question"], self.report, last_action, observation, next_round,
                                     self.max_rounds, notes)
        info = {"tool_calls": dumped, "rebuild_context": True, "round": next_round, "report_chars": len(self.report),
                "messages": [{"role": "system", "content": self.system_prompt()}, {"role": "user", "content": workspace}],
                "observation": Observation(text=workspace, role="user", memory=self.report).model_dump()}
        return workspace, 0.0, False, info

    # ---- branching and clean-up -------------------------------------------------------------------
    def fork(self) -> DeepResearchEnv:
        """Shares the corpus, index and engine; copies the episode state and forks the Python session."""
        clone = copy.copy(self)
        clone.task = copy.deepcopy(self.task)
        clone.episode_calls = list(self.episode_calls)
        clone._transcript = list(self._transcript)
        clone._np_random = copy.deepcopy(self._np_random)
        if self.python is not None:
            clone.python = self.python.fork()
            clone.toolset = clone._toolset()
        return clone

    def close(self) -> None:
        if self.python is not None:
            self.python.close()
        super().close()


class DeepResearchReActEnv(WebSearchEnv):
    """The mono-context ReAct comparison: same tools (search, open, python) and questions, one growing context."""

    def __init__(self, tool_format: str = "xml", limits: EnvLimits | dict | None = None, render_mode: str | None = None,
                 max_rounds: int = 32, round_tokens: int = 1024, python: bool = True, sandbox: dict | None = None,
                 **options: Any):
        if not 1 <= max_rounds <= MAX_ROUNDS:
            raise ValueError(f"max_rounds must be between 1 and {MAX_ROUNDS}, got {max_rounds}")
        self.python = SandboxedPython(sandbox) if python else None
        limits = limits or EnvLimits(max_turns=max_rounds, max_tokens_per_turn=round_tokens,
                                     max_tokens_per_episode=round_tokens * max_rounds)
        super().__init__(tool_format=tool_format, limits=limits, render_mode=render_mode, **options)

    def extra_tools(self) -> list[Tool]:
        return [self.python.tool()] if self.python else []

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        if self.python is not None:
            self.python.close()
        return super()._reset(options)

    def fork(self) -> DeepResearchReActEnv:
        clone = super().fork()
        if self.python is not None:
            clone.python = self.python.fork()
            clone.toolset = ToolSet(self.search_tools.tools() + [clone.python.tool()], self.toolset.default_timeout_s)
        return clone  # type: ignore[return-value]

    def close(self) -> None:
        if self.python is not None:
            self.python.close()
        super().close()
