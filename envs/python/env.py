"""The Python interpreter environment: the agent writes code, a sandboxed interpreter runs it, and the
episode ends with a verifiable final answer.

XML format (ARPO): ``<python>code</python>`` is answered inline by ``<result>output</result>``; the final
answer is ``<answer>…</answer>`` (``\\boxed{}`` accepted inside). Hermes format: a ``python`` tool with
one argument, ``code``. One persistent sandbox session per episode (state carries across calls like a
notebook), started on the first call and closed with the env; `fork()` forks the session, so branched
rollouts continue from the same interpreter state. Sandbox failures (timeouts, crashes, limits) become
observations and the episode goes on.

Reward: 1 for a correct final answer (numeric tolerance), 0 otherwise; ``format_penalty`` (default 0,
ARPO uses -1) is added when the episode ends without an answer.
"""

from __future__ import annotations

from typing import Any

from agentgym.env import EnvLimits
from agentgym.envs.answers import grade
from agentgym.envs.python.tasks import DIFFICULTIES, EASY_KINDS, GENERATORS, generate, load_jsonl
from agentgym.sandboxes import LocalSandbox, Sandbox, SandboxLimits, ToolArgumentError, validate_tool_arguments
from agentgym.tool_env import ToolEnv
from agentgym.tools import Tool, ToolError


class PythonEnv(ToolEnv):
    instructions = ("Solve the problem. Write Python code in <python></python> to compute the answer; "
                    "what it prints appears in <result></result>. Then give only the final number in "
                    "<answer></answer>.")

    def __init__(self, tool_format: str = "xml", limits: EnvLimits | dict | None = None, render_mode: str | None = None,
                 kinds: tuple[str, ...] | list[str] | None = None, difficulty: str = "easy", split: str = "train",
                 task_file: str | None = None, sandbox: dict | SandboxLimits | None = None, format_penalty: float = 0.0):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if difficulty not in (*DIFFICULTIES, "mixed"):
            raise ValueError(f"difficulty must be one of {DIFFICULTIES + ('mixed',)}, got {difficulty!r}")
        self.kinds = tuple(kinds or (EASY_KINDS if difficulty == "easy" else GENERATORS))
        unknown = set(self.kinds) - set(GENERATORS)
        if unknown:
            raise ValueError(f"unknown task kinds {sorted(unknown)}; known: {sorted(GENERATORS)}")
        self.difficulty, self.split = difficulty, split
        self.file_tasks = load_jsonl(task_file) if task_file else None
        self.sandbox_limits = sandbox if isinstance(sandbox, SandboxLimits) else SandboxLimits(**(sandbox or {}))
        self._sandbox: Sandbox | None = None
        super().__init__([self._python_tool()], tool_format=tool_format,
                         limits=limits or EnvLimits(max_turns=4, max_tokens_per_turn=256),
                         render_mode=render_mode, no_answer_reward=format_penalty)

    def _python_tool(self) -> Tool:
        env = self

        def python(code: str) -> str:
            """Run Python code in a persistent sandboxed interpreter and return what it printed.

            Args:
                code: Python source. Variables persist between calls; print() what you want to see.
            """
            return env.run_code(code)

        return Tool(python)

    def system_prompt(self) -> str:
        if self.tool_format == "xml":  # the instructions already teach the tags: keep the prompt short
            return self.instructions
        return super().system_prompt()

    @property
    def expert(self) -> str | None:
        return "agentgym.envs.python.expert:python_expert" if self.tool_format == "xml" and not self.file_tasks else None

    # ---- tasks and scoring -----------------------------------------------------------------------
    def sample_task(self, options: dict[str, Any] | None) -> dict[str, Any]:
        if self.file_tasks is not None:
            return dict(self.file_tasks[int(self.np_random.integers(len(self.file_tasks)))])
        return generate(self.np_random, self.kinds, self.difficulty, self.split)

    def score(self, answer: str) -> float:
        return 1.0 if grade(answer, self.task["answer"], rel_tol=1e-6, abs_tol=0.005) else 0.0

    # ---- the sandbox session ----------------------------------------------------------------------
    def run_code(self, code: str) -> str:
        if self._sandbox is None:
            self._sandbox = LocalSandbox(self.sandbox_limits)
        result = self._sandbox.run(code)
        if result.error_type == "infra_error":
            raise ToolError(result.error or "the sandbox failed", "infra_error")
        return result.to_observation()

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        if self._sandbox is not None:  # a new episode never sees the previous one's interpreter
            self._sandbox.close()
            self._sandbox = None
        return super()._reset(options)

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if self.tool_format == "hermes":
            for call in self.parser.parse(action).calls:
                if isinstance(call.arguments, dict):
                    try:
                        validate_tool_arguments(call.arguments, {"code"})
                    except ToolArgumentError as e:
                        return self._reply(f"Error: {e}", "tool", [_rejected(call.name, call.arguments, str(e))])
        return super()._step(action)

    can_fork = True  # the sandbox forks its interpreter state

    def fork(self) -> PythonEnv | None:
        copy = PythonEnv.__new__(PythonEnv)
        copy.__dict__.update(self.__dict__)
        copy.toolset = self.toolset.__class__([copy._python_tool()], self.toolset.default_timeout_s)
        copy.parser = self.parser
        copy.task = dict(self.task)
        copy._transcript = list(self._transcript)
        copy._sandbox = self._sandbox.fork() if self._sandbox is not None else None
        copy.np_random = self.np_random  # not used after reset; the task is fixed
        return copy

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
        super().close()


def _rejected(name: str, arguments: dict, message: str):
    from agentgym.trajectory import ToolCallRecord

    return ToolCallRecord(name=name, arguments=arguments, error_type="denied", error=message, output=f"Error: {message}")
