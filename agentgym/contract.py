"""The environment contract: everything an env author implements and everything the engine relies on.

An agentgym env is a `gymnasium.Env` whose actions and observations are text; subclass
`agentgym.TextEnv` (any text game or task) or `agentgym.ToolEnv` (tool calls plus a scored final answer).
This module is the one place the contract is written down, the way Gymnasium's ``core.py`` documents
``Env``. `AgentEnv` lists each method and hook with its arguments and return values; `ResetInfo` and
`StepInfo` type the ``info`` keys the rollout engine reads (it validates them and names the env and key
when one is wrong); `Capabilities` holds what an env declares about itself. The base classes implement
the contract; the code is in ``agentgym/env.py`` and ``agentgym/tool_env.py``.

How the engine drives an env (``agentgym run``, training, ``check-env``'s agents)
-------------------------------------------------------------------------------
1. ``env = factory()``: the registered entry point called with the env kwargs (``--env-kwarg``,
   ``env.kwargs`` in a config; ``train`` also passes ``limits``). Bad kwargs fail before any work starts.
2. ``obs, info = env.reset(seed=task_seed, options={"task": row} or None)``. The first observation is
   rendered as the first user message after ``env.system_prompt()``.
3. The policy samples an action (stopping at ``env.stop_strings()``, the end-of-turn token, or the
   per-turn token budget). The env receives the **text without the end-of-turn marker**
   (``<|im_end|>``); the stored token ids keep it, because they are what was sampled.
4. ``obs, reward, terminated, truncated, info = env.step(action)``. The observation is rendered as a new
   chat message with ``info["observation"]["role"]`` (``user`` by default, ``tool``, or ``inline`` to
   continue the assistant's own message as XML tool results do). Repeat from 3 until terminated or
   truncated. An episode's return is the sum of its step rewards.
5. ``env.close()``, always, unless a call into the env hung (then the env is abandoned, never touched).

Branching (ARPO) starts extra samples of a turn: the engine calls ``env.fork()`` if the env declares
``can_fork``; on ``None`` (the default) it *replays the prefix*: a fresh env, ``reset`` with the same
seed and task, then every action so far. So an env must be deterministic under ``reset(seed=...)`` with
``options["task"]`` (``check-env`` verifies it), and replay is how ``agentgym replay --reexecute`` and
``--rescore`` work too.

Bounds and failures: every call above runs in a worker thread under a timeout (``rollout.step_timeout_s``
for ``step``, ``rollout.env_timeout_s`` for the others). A call that raises or hangs ends only its own
path; it is recorded as a typed `agentgym.env_calls.PathFailure` in ``tree.meta["failed_paths"]``.
Errors the *model* causes (a bad tool call, an unknown command) are not failures: answer them with an
observation the model can read.

Concurrency rule: the engine runs many episodes at once, each in its own env instance, calling them from
a pool of worker threads. One instance never sees two calls at once; different instances may run at the
same moment. An env whose instances share state that is not thread safe (a module-level parser, one JVM
gateway, a global RNG) sets ``thread_safe = False``: the engine then serialises every call into every
instance of that class (and the factory that makes them). Do not add your own global lock.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentgym.trajectory import Observation, ToolCallRecord


class EnvContractError(ValueError):
    """An env returned something the engine cannot use; the message names the env and the key."""


@runtime_checkable
class AgentEnv(Protocol):
    """The methods, hooks and declarations of an agentgym env (implemented by `agentgym.TextEnv`)."""

    # ---- declarations (class attributes) ------------------------------------------------------------
    thread_safe: ClassVar[bool]
    """False: instances share state that is not thread safe; the engine serialises calls into the class."""

    can_fork: ClassVar[bool]
    """True: `fork` may return a copy. False (default): the engine always replays the action prefix."""

    nonblocking: ClassVar[bool]
    """True: every call returns within about a millisecond and never waits on I/O, so the engine calls it
    on its own event loop instead of a worker thread (no thread hop per step). A call that overruns its
    limit still fails its path as a timeout, once it returns, and moves the class back to worker threads;
    one that never returns would stall the engine: declare it only for pure in-memory envs."""

    expert: str | None
    """``"package.module:function"`` of a scripted expert, ``fn(context_text) -> action_text``, where the
    context is the decoded conversation exactly as the engine renders it (chat template included). Used
    by ``check-env`` (it must score), SFT warm-starts and ``--policy scripted:...``. None: no expert."""

    limits: Any
    """`agentgym.EnvLimits`: max turns and action size (enforced by the env), token budgets per turn and
    per episode (enforced by the engine). Envs take ``limits`` as a constructor argument; ``train`` passes
    the config's ``env.limits`` through it."""

    # ---- the Gymnasium API --------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        """Start an episode.

        Args:
            seed: Seeds ``self.np_random``; the same seed (and task) must give the same episode.
            options: ``{"task": row}`` to pose a given task (a dataset row, or the task stored in a
                trajectory tree for replay); otherwise the env picks a task with ``self.np_random``.
                ``reset(seed=s, options={"task": info["task"]})`` with the task a ``reset(seed=s)`` reported
                must pose that same episode (replays do exactly this): draw the episode's other random
                values the same way whether the task was sampled or given.

        Returns:
            ``(observation, info)``: the first message the agent reads, and `ResetInfo` keys.
        """

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Apply one assistant message.

        Args:
            action: The model's text for this turn, without the end-of-turn marker. May be empty, huge,
                or malformed: answer with an error observation, never raise (`TextEnv` does this).

        Returns:
            ``(observation, reward, terminated, truncated, info)``: the next message the agent reads; the
            reward for this step; whether the episode ended on its own (solved, failed, answered) or was
            cut short (a limit, with ``info["truncated_reason"]``); and `StepInfo` keys.
        """

    def close(self) -> None:
        """Release processes, threads, files and sockets. Must be safe to call twice."""

    # ---- hooks the engine calls ---------------------------------------------------------------------
    def system_prompt(self) -> str | None:
        """Instructions rendered as the system message before the first observation (tools, answer
        format), or None for no system message."""

    def stop_strings(self) -> list[str]:
        """Strings that end a generation early (e.g. ``</python>`` so a tool runs as soon as its call is
        closed). The stop string is kept in the action. Default: none."""

    def fork(self) -> Any:
        """An independent copy of the env in its current state, or None for "replay the prefix" (default).
        Override only where copying is cheap and exact, and set ``can_fork = True``."""


class ResetInfo(BaseModel):
    """The ``info`` keys of ``reset`` that the engine reads. Other keys are allowed and ignored."""

    model_config = ConfigDict(extra="allow")

    observation: Observation | None = Field(default=None, description="The full first observation (role, "
                                            "memory, images); default: the text with role user.")
    task: dict[str, Any] | None = Field(default=None, description="The task posed, stored in the tree "
                                        "(and passed back as options['task'] on replay).")


class StepInfo(BaseModel):
    """The ``info`` keys of ``step`` that the engine reads. Other keys are allowed and stored on the turn
    (``node.info``) as JSON."""

    model_config = ConfigDict(extra="allow")

    observation: Observation | None = Field(default=None, description="The full observation; its role "
                                            "decides how it is rendered (user | tool | inline).")
    tool_calls: list[ToolCallRecord] = Field(default_factory=list, description="Tool calls this action "
                                             "made, with latency and typed errors (counted as errors when "
                                             "error_type is set).")
    truncated_reason: str | None = Field(default=None, description="Why truncated=True, e.g. max_turns.")
    rebuild_context: bool = Field(default=False, description="True: the next context is `messages` "
                                  "rendered afresh (Markovian state reconstruction), not the history.")
    messages: list[dict[str, str]] | None = Field(default=None, description="The chat messages of the next "
                                                  "context; required when rebuild_context is true.")
    action_error: str | None = Field(default=None, description="Set when the action itself was unusable "
                                     "(empty, not UTF-8, too long).")


def validate_info(model: type[BaseModel], info: Any, env_id: str, call: str) -> BaseModel:
    """`info` checked against `model`, or `EnvContractError` naming the env, the call and the key."""
    if not isinstance(info, dict):
        raise EnvContractError(f"env {env_id or '?'}: {call}() returned info of type {type(info).__name__}, "
                               "expected a dict")
    try:
        parsed = model.model_validate(info)
    except ValidationError as e:
        err = e.errors()[0]
        key = "".join(f"[{p!r}]" for p in err["loc"])
        raise EnvContractError(f"env {env_id or '?'}: {call}() returned a bad info{key}: {err['msg']} "
                               f"(got {str(err.get('input'))[:80]!r})") from None
    if isinstance(parsed, StepInfo) and parsed.rebuild_context and not parsed.messages:
        raise EnvContractError(f"env {env_id or '?'}: {call}() set info['rebuild_context'] without info['messages']")
    return parsed


class Capabilities(BaseModel):
    """What an env declares about itself (class attributes with these names); the engine reads these
    declarations instead of probing for methods."""

    model_config = ConfigDict(frozen=True)

    thread_safe: bool = True
    can_fork: bool = False
    nonblocking: bool = False

    @classmethod
    def of(cls, env: Any) -> Capabilities:
        return cls(thread_safe=bool(getattr(env, "thread_safe", True)), can_fork=bool(getattr(env, "can_fork", False)),
                   nonblocking=bool(getattr(env, "nonblocking", False)))
