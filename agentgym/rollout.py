"""The rollout engine: many episodes at once, generation batched across them, trees out.

Every live path (an episode, or a branch of one) is a coroutine: it asks the `GenerationBatcher` (`agentgym.batching`) for a generation,
records the turn in its group's `TrajectoryTree`, and steps its env in a worker thread (on the event loop
itself for envs that declare ``nonblocking = True``: see `agentgym.env_calls`). The batcher sends
one batched `generate` call when every live path is waiting for the model (or after a short wait), so the
model is busy while envs step and envs step while the model is busy. A rollout strategy may ask for extra
samples of a turn (`RolloutStrategy`: it sees each sampled turn, returns a `Branching`): the engine forks
the env (``env.fork()``, else replays the action prefix in a fresh env) and runs the branch as a sibling
path that shares the stored prefix.

Guarantees: the context fed to the policy equals ``tree.context_ids(node)`` and the stored action equals
the sampled ids (asserted per turn); token budgets per turn and per episode are enforced; every env call
(factory, reset, step, fork, prefix replay, close) runs under a timeout through `agentgym.env_calls`, and one
that hangs or raises ends only its own path, recorded as a typed `PathFailure` in ``tree.meta["failed_paths"]``.
The env receives the model's text without its end-of-turn marker (the stored ids keep it: they are what was
sampled); envs that declare ``thread_safe = False`` get their calls serialised.

The engine's own cost per step is kept to tens of microseconds (bench/scale/overhead.py): the token check
compares only each turn's new tokens, observation ids are memoised by the renderer, and objects older than
the rollout are kept out of the garbage collector while it runs (`agentgym.gc_pause`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from agentgym.batching import GenerationBatcher
from agentgym.config import RolloutConfig
from agentgym.contract import Capabilities, EnvContractError, ResetInfo, StepInfo, validate_info
from agentgym.env import EnvLimits, TextEnv, observation_from
from agentgym.env_calls import EnvCaller, EnvCallFailed, PathFailure
from agentgym.gc_pause import gc_frozen
from agentgym.policies.base import Generation, GenerationRequest, Policy, SamplingParams
from agentgym.rendering import ChatRenderer
from agentgym.tool_env import ToolEnv
from agentgym.trajectory import Observation, ToolCallRecord, TrajectoryTree, Turn


class RolloutError(RuntimeError):
    """A path failed for a reason that is not the env's or the model's output (e.g. the model server)."""


class TokenDriftError(AssertionError):
    """The tokens about to be stored differ from the tokens the policy saw or sampled."""


@dataclass
class Task:
    """One rollout group: the env is reset with `seed` (and ``options={"task": task}`` if given)."""

    seed: int
    task: dict[str, Any] | None = None


@dataclass
class PathState:
    """A live path (an episode, or a branch of one)."""

    group: _Group
    env: Any
    actions: list[str]  # action texts so far, for replay-based forking
    context: list[int]
    pending_prefix: list[int]
    parent: int | None
    rebuild: bool
    tokens_used: int = 0
    serial: int = 0  # order in which the group's paths were started (a stable batching key)
    previous: ObservationKind = "reset"  # what the model saw right before its next turn
    tool_env: bool = False  # the env is a tool env (its steps may return tool results)
    last_node: int | None = None  # the path's latest turn (its leaf once the path ends)
    memory: dict[str, Any] = field(default_factory=dict)  # the strategy's own, per path; never read here
    images: list[Any] = field(default_factory=list)  # images in the context, in order (vision policies only)
    messages: list[dict[str, Any]] = field(default_factory=list)  # the context as chat messages (chat-route policies)
    # `context` was checked against the tree once (a branch's first turn walks the tree); from then on it is
    # extended from the stored nodes' own ids, so each turn's check compares only the new tokens.
    verified: bool = False


ObservationKind = Literal["reset", "tool", "observation"]


@dataclass
class TurnView:
    """What a rollout strategy is shown after each sampled turn."""

    node: Turn  # the turn just sampled (its env step has not run yet)
    generation: Generation  # what the policy returned for it (log-probs, entropies, finish reason)
    previous: ObservationKind  # what the model saw right before it: the task ("reset"), a tool result
    # ("tool": the previous step ran tool calls) or another env observation ("observation")
    tool_env: bool  # whether the env is a tool env, for strategies whose default depends on it
    memory: dict[str, Any]  # the strategy's per-path memory; a branch starts with a copy of its source's


@dataclass
class Branching:
    """A strategy's decision: how many extra samples of this turn to start, and the signal that triggered
    them (stored on each branch node as `Turn.branch_entropy`, for the viewer and the trainer; a strategy
    without a meaningful value leaves 0)."""

    count: int = 0
    signal: float = 0.0


class RolloutStrategy(Protocol):
    def branches(self, turn: TurnView) -> Branching:
        """Decide whether to branch at a freshly sampled turn."""


BranchStrategy = RolloutStrategy  # the older name


class NoBranching:
    def branches(self, turn: TurnView) -> Branching:
        return Branching()


@dataclass
class _Group:
    spec: Task
    tree: TrajectoryTree
    index: int = 0  # position of the task in the run (a stable batching key)
    started: int = 0  # paths started (roots + branches); capped at max_trajectories
    live: int = 0
    serial: int = 0  # paths launched so far, for PathState.serial
    errors: list[BaseException] = field(default_factory=list)  # failures that must stop the run
    prompts: list[list[int]] = field(default_factory=list)  # distinct first prompts of its roots
    done: asyncio.Event = field(default_factory=asyncio.Event)


class RolloutEngine:
    """Runs tasks against envs made by `env_factory` with `policy`, returning one tree per task."""

    def __init__(self, policy: Policy, env_factory: Callable[[], Any], env_id: str = "",
                 config: RolloutConfig | None = None, strategy: RolloutStrategy | None = None,
                 limits: EnvLimits | None = None, progress: bool = False, on_tree: Callable[[TrajectoryTree], None] | None = None):
        self.policy = policy
        self.env_factory = env_factory
        self.env_id = env_id
        self.config = config or RolloutConfig()
        self.strategy = strategy or NoBranching()
        self.limits = limits
        self.progress = progress
        self.on_tree = on_tree
        self.renderer = ChatRenderer.for_policy(policy)  # how observation images reach the model, if at all
        self.stats: dict[str, float] = {}
        self._eos = getattr(policy.tokenizer, "eos_token_id", None)  # read once: tokenizer attributes are slow
        self._native_twins: dict[tuple[type, str], bool] = {}  # (env class, "step"/"reset") -> has async twin

    def run(self, tasks: Sequence[Task | int]) -> list[TrajectoryTree]:
        """Blocking entry point. Owns its event loop, so it can give env steps enough worker threads
        (asyncio's default pool has only cpu_count + 4) and return without joining a worker thread that a
        hung env step still occupies (``asyncio.run`` would wait for it)."""
        loop = asyncio.new_event_loop()
        executor = ThreadPoolExecutor(max_workers=self.config.max_workers, thread_name_prefix="agentgym-rollout")
        loop.set_default_executor(executor)
        try:
            return loop.run_until_complete(self.arun(tasks))
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:  # paths close their envs as they unwind; bounded, so Ctrl-C returns in seconds
                loop.run_until_complete(asyncio.wait(pending, timeout=_UNWIND_S))
            loop.run_until_complete(loop.shutdown_asyncgens())
            executor.shutdown(wait=False, cancel_futures=True)
            loop.close()

    async def arun(self, tasks: Sequence[Task | int]) -> list[TrajectoryTree]:
        specs = [t if isinstance(t, Task) else Task(seed=int(t)) for t in tasks]
        batcher = GenerationBatcher(self.policy, self.config.max_batch_size, self.config.batch_wait_s,
                           self.config.deterministic)
        server = asyncio.create_task(batcher.serve())
        self._batcher, self._env_time = batcher, 0.0
        self.calls = EnvCaller(self.config.env_timeout_s, self.config.step_timeout_s)
        start = time.perf_counter()
        try:
            with _progress(self.progress, len(specs)) as advance, gc_frozen():
                bound = self.config.max_concurrent_tasks
                slots = asyncio.Semaphore(bound) if bound else contextlib.nullcontext()

                async def one(index: int, spec: Task) -> TrajectoryTree:
                    async with slots:  # type: ignore[attr-defined]
                        tree = await self._run_group(spec, index)
                    advance(tree)
                    if self.on_tree:
                        self.on_tree(tree)
                    return tree

                trees = await asyncio.gather(*(one(i, s) for i, s in enumerate(specs)))
        finally:
            server.cancel()
        wall = time.perf_counter() - start
        self.stats = {"wall_s": wall, "generation_s": batcher.gen_time, "env_s": self._env_time,
                      "generated_tokens": batcher.gen_tokens, "tokens_per_s": batcher.gen_tokens / max(wall, 1e-9)}
        return list(trees)

    # ---- groups and paths -------------------------------------------------------------------------
    def _max_trajectories(self) -> int:
        return max(self.config.max_trajectories or self.config.group_size, self.config.group_size)

    async def _run_group(self, spec: Task, index: int = 0) -> TrajectoryTree:
        tree = TrajectoryTree(env_id=self.env_id, seed=spec.seed, task=spec.task or {},
                              policy_version=self.policy.version)
        group = _Group(spec=spec, tree=tree, index=index)
        start = time.perf_counter()
        for _ in range(self.config.group_size):
            self._start_root(group)
        while True:
            await group.done.wait()
            if group.live == 0 and self.config.supplement and group.started < self._max_trajectories():
                group.done.clear()
                self._start_root(group)  # top up with a fresh episode if every path ended early
                continue
            if group.live == 0:
                break
            group.done.clear()
        release = getattr(self.policy, "release", None)  # duck-typed policies may lack the hint
        for prompt in group.prompts if release is not None else ():
            release(prompt)  # no path of this group will ask for these contexts again
        if group.errors:
            raise RolloutError(f"rollout of task seed={spec.seed} failed: {type(group.errors[0]).__name__}: "
                               f"{group.errors[0]}") from group.errors[0]
        tree.timings["total_s"] = time.perf_counter() - start
        tree.timings["generation_s"] = sum(n.gen_time_s for n in tree.nodes)
        tree.timings["env_s"] = sum(n.env_time_s for n in tree.nodes)
        return tree

    def _launch(self, group: _Group, coro_fn: Callable[[], Any], reserved: bool = False) -> None:
        if not reserved:
            group.started += 1
        group.live += 1
        self._batcher.live_paths += 1

        async def wrapped() -> None:
            try:
                await coro_fn()
            except Exception as e:  # policy failure or token drift: surfaced by arun, never lost
                group.errors.append(e)
            finally:
                group.live -= 1
                self._batcher.live_paths -= 1
                group.done.set()
                self._batcher.check_full()  # fewer live paths: a waiting batch may now be complete

        asyncio.ensure_future(wrapped())

    def _start_root(self, group: _Group) -> None:
        serial = group.serial
        group.serial += 1

        async def root() -> None:
            env = None
            options = {"task": group.spec.task} if group.spec.task else None
            try:
                env = await self.calls.make(self.env_factory)
                obs, info = await self._env_call("reset", env, seed=group.spec.seed, options=options)
                self._check_info(ResetInfo, info, "reset")
            except EnvCallFailed as e:
                _record_failure(group.tree, e.failure, serial)
                if e.failure.stage != "factory" and e.failure.error_type != "timeout":
                    await self.calls.close(env)  # a hung env is abandoned, never touched again
                return
            first = observation_from(obs, info)
            if group.tree.initial_observation is None:
                group.tree.initial_observation = first
                group.tree.task = group.spec.task or info.get("task", {})
            system = env.system_prompt() if hasattr(env, "system_prompt") else None
            prompt = self.renderer.initial_prompt_ids(system, first)
            if prompt not in group.prompts:
                group.prompts.append(prompt)
            path = PathState(group=group, env=env, actions=[], context=[], pending_prefix=prompt,
                             parent=None, rebuild=True, serial=serial, tool_env=isinstance(env, ToolEnv),
                             images=self._vision_images(first),
                             messages=self._chat([{"role": "system", "content": system}] if system else [], first))
            await self._run_path(path)

        self._launch(group, root)

    def _action_text(self, gen: Generation) -> str:
        """The text the env receives and the tree shows: the sampled text without the end-of-turn token
        (``<|im_end|>``), which belongs to the chat format, not to the action. The ids keep it."""
        eos = self._eos
        if gen.finish_reason == "eos" and eos is not None and gen.token_ids and gen.token_ids[-1] == eos:
            return self.policy.tokenizer.decode(list(gen.token_ids[:-1]), skip_special_tokens=False)
        return gen.text

    def _limits(self, env: Any) -> EnvLimits:
        return self.limits or getattr(env, "limits", None) or EnvLimits()

    async def _run_path(self, path: PathState, branch_signal: tuple[float, int] | None = None) -> None:
        tree = path.group.tree
        try:
            while True:
                limits = self._limits(path.env)
                budget = limits.max_tokens_per_episode - path.tokens_used
                context = path.context + path.pending_prefix if not path.rebuild else list(path.pending_prefix)
                stops = tuple(path.env.stop_strings()) if hasattr(path.env, "stop_strings") else ()
                params = SamplingParams(max_new_tokens=max(1, min(limits.max_tokens_per_turn, budget)),
                                        temperature=self.config.temperature, top_p=self.config.top_p, stop=stops)
                t0 = time.perf_counter()
                key = (path.group.index, path.serial, len(path.actions))
                gen = await self._batcher.submit(GenerationRequest(context, params, images=list(path.images),
                                                                   messages=list(path.messages) or None), key)
                served = gen.meta.get("prompt_ids")
                if served is not None and list(served) != context:
                    # A chat-route server re-rendered the conversation (it re-tokenises earlier turns' text):
                    # store the ids it fed the model as this turn's whole context, so training stays exact.
                    context = list(served)
                    path.pending_prefix, path.rebuild, path.context = context, True, []
                    gen.meta["prompt_from_server"] = True
                node = tree.add(Turn(id=0, parent=path.parent, rebuild_context=path.rebuild,
                                     prefix_ids=path.pending_prefix, action_ids=list(gen.token_ids),
                                     logprobs=list(gen.logprobs), entropies=list(gen.entropies),
                                     action_text=self._action_text(gen), finish_reason=gen.finish_reason,
                                     policy_version=self.policy.version, gen_time_s=time.perf_counter() - t0,
                                     # "top-k" when a server gave no exact entropies (openai_compat): an estimate
                                     info={k: gen.meta[k] for k in ("entropy_estimate", "prompt_from_server")
                                           if k in gen.meta}))
                path.last_node = node.id
                if branch_signal is not None:
                    node.branch_entropy, node.branched_from = branch_signal
                    branch_signal = None
                _assert_token_exact(tree, node, context, gen,
                                    len(path.context) if path.verified and not path.rebuild else None)
                path.verified = True
                path.tokens_used += len(gen.token_ids)
                await self._spawn_branches(path, node, gen)
                if not await self._step(path, node, gen):
                    break
                if path.tokens_used >= limits.max_tokens_per_episode:  # the env saw the action; no budget left
                    node.truncated, node.truncated_reason = True, "max_tokens_per_episode"
                    break
        finally:
            leaf = path.last_node
            if leaf is not None:  # the episode return: every step reward along the path
                tree.final_rewards[leaf] = sum(n.reward for n in tree.path(leaf))
            await self.calls.close(path.env)

    @property
    def _wants_messages(self) -> bool:
        return bool(getattr(self.policy, "wants_messages", False))

    def _chat(self, messages: list[dict[str, Any]], obs: Observation) -> list[dict[str, Any]]:
        """`messages` plus `obs` as a chat message, for a policy that is sent chat messages (else [])."""
        return messages + [self.renderer.chat_message(obs)] if self._wants_messages else []

    def _vision_images(self, obs: Observation) -> list[Any]:
        """The images of `obs` that go into the model's input (only a vision policy's renderer places any)."""
        return list(obs.images) if self.renderer.image_input == "vision" else []

    async def _env_call(self, stage: str, env: Any, *args: Any, **kwargs: Any) -> Any:
        """reset/step `env` under its timeout: through its own async twin if it has a native one (an env
        over HTTP), else the blocking method in a worker thread (serialised if the env is not thread safe)."""
        key = (type(env), stage)
        native = self._native_twins.get(key)
        if native is None:  # looked up once per class: inspecting it costs more than a no-op step
            twin = getattr(type(env), "a" + stage, None)
            native = self._native_twins[key] = (twin is not None and twin is not getattr(TextEnv, "a" + stage)
                                                and asyncio.iscoroutinefunction(twin))
        if native:
            return await self.calls.call_async(stage, getattr(env, "a" + stage)(*args, **kwargs))
        return await self.calls.call(stage, getattr(env, stage), *args, env=env, **kwargs)

    def _check_info(self, model: type, info: Any, call: str) -> None:
        """The info keys the engine reads, typed (`agentgym.contract`); a bad one ends the path, named."""
        try:
            validate_info(model, info, self.env_id, call)
        except EnvContractError as e:
            raise EnvCallFailed(PathFailure(stage=call, error_type="infra_error", error=str(e))) from e

    async def _step(self, path: PathState, node: Turn, gen: Generation) -> bool:
        """Step the env with the action; record the outcome. Returns whether the path continues."""
        t0 = time.perf_counter()
        try:
            obs, reward, terminated, truncated, info = await self._env_call("step", path.env, node.action_text)
            self._check_info(StepInfo, info, "step")
        except EnvCallFailed as e:
            failure = e.failure
            node.tool_calls.append(ToolCallRecord(name="(env.step)", error_type=failure.error_type, error=failure.error))
            node.truncated = True
            node.truncated_reason = "env_step_timeout" if failure.error_type == "timeout" else "env_error"
            _record_failure(path.group.tree, failure, path.serial, node.id)
            if failure.error_type == "timeout":
                path.env = None  # a worker thread may still be inside it; never reuse or close it here
            return False
        finally:
            node.env_time_s = time.perf_counter() - t0
            self._env_time += node.env_time_s
        path.actions.append(node.action_text)
        observation = observation_from(obs, info)
        node.observation = observation
        if info.get("tool_calls"):
            node.tool_calls += [ToolCallRecord.model_validate(c) for c in info["tool_calls"]]
        node.reward = float(reward)
        if terminated or truncated:  # pydantic attribute writes cost microseconds: only what differs from the default
            node.terminated, node.truncated = bool(terminated), bool(truncated)
            node.truncated_reason = info.get("truncated_reason") if truncated else None
        node.info.update(_jsonable({k: v for k, v in info.items() if k not in ("tool_calls", "observation", "messages")}))
        if terminated or truncated:
            return False
        path.previous = "tool" if node.tool_calls else "observation"
        path.parent = node.id
        if info.get("rebuild_context"):
            path.pending_prefix, path.rebuild = self.renderer.prompt_ids(info["messages"]), True
            path.context, path.images = [], []
            path.messages = list(info["messages"]) if self._wants_messages else []
            path.tokens_used = 0  # a rebuilt context is a new round: the episode budget applies per round
        else:
            # From the stored node's ids, in place (a branch took its own copy): the tree's context, built O(new)
            if path.rebuild:
                path.context = list(node.prefix_ids)
            else:
                path.context.extend(node.prefix_ids)
            path.context.extend(node.action_ids)
            path.pending_prefix = self.renderer.observation_ids(observation, after_eos=gen.finish_reason == "eos")
            path.images = path.images + self._vision_images(observation)
            path.messages = self._chat(path.messages + [{"role": "assistant", "content": node.action_text}], observation)
            path.rebuild = False
        return True

    # ---- branching --------------------------------------------------------------------------------
    async def _spawn_branches(self, path: PathState, node: Turn, gen: Generation) -> None:
        group = path.group
        if type(self.strategy) is NoBranching:  # the common case, without building its view every turn
            return
        decision = self.strategy.branches(TurnView(node=node, generation=gen, previous=path.previous,
                                                   tool_env=path.tool_env, memory=path.memory))
        count = max(0, min(decision.count, self._max_trajectories() - group.started))
        group.started += count  # reserve before awaiting forks: other paths check the cap meanwhile
        for _ in range(count):
            signal = (float(decision.signal), node.id)
            snapshot = PathState(group=group, env=None, actions=list(path.actions), context=list(path.context),
                                 pending_prefix=list(path.pending_prefix), parent=path.parent, rebuild=path.rebuild,
                                 tokens_used=path.tokens_used - len(gen.token_ids), previous=path.previous,
                                 tool_env=path.tool_env, memory=dict(path.memory), serial=group.serial,
                                 images=list(path.images), messages=list(path.messages))
            group.serial += 1
            # Fork now, before this path steps its env: the branch must start from the state the
            # sampled turn saw. Envs that cannot fork are rebuilt by replay inside the branch.
            forked: Any = None
            fork_failure: PathFailure | None = None
            if Capabilities.of(path.env).can_fork:  # declared; otherwise replay the prefix
                try:
                    forked = await self.calls.call("fork", path.env.fork, env=path.env)
                except EnvCallFailed as e:  # ends only the branch; the parent path goes on
                    fork_failure = e.failure

            async def branch(snapshot: PathState = snapshot, signal: tuple[float, int] = signal,
                             forked: Any = forked, fork_failure: PathFailure | None = fork_failure) -> None:
                if fork_failure is not None:
                    _record_failure(group.tree, fork_failure, snapshot.serial, node.id)
                    return
                try:
                    snapshot.env = forked if forked is not None else await self._replay_env(group.spec, snapshot.actions)
                except EnvCallFailed as e:
                    _record_failure(group.tree, e.failure, snapshot.serial, node.id)
                    return
                await self._run_path(snapshot, branch_signal=signal)

            self._launch(group, branch, reserved=True)

    async def _replay_env(self, spec: Task, actions: list[str]) -> Any:
        """A fresh env brought to the state after `actions` (envs are deterministic under a seed). Any
        failure or hang is reported as a ``replay`` failure; the half-replayed env is closed unless hung."""
        fresh = None
        try:
            fresh = await self.calls.make(self.env_factory)
            await self._env_call("reset", fresh, seed=spec.seed, options={"task": spec.task} if spec.task else None)
            for action in actions:
                await self._env_call("step", fresh, action)
            return fresh
        except EnvCallFailed as e:
            if e.failure.error_type != "timeout":
                await self.calls.close(fresh)
            raise EnvCallFailed(e.failure.model_copy(update={"stage": "replay",
                                                             "error": f"prefix replay: {e.failure.error}"})) from e


_UNWIND_S = 2.0  # how long interrupted paths get to close their envs before the loop is closed


def _assert_token_exact(tree: TrajectoryTree, node: Turn, context: list[int], gen: Generation,
                        stored: int | None = None) -> None:
    """The stored turn equals what the policy saw and sampled. `stored`: how many leading tokens of `context`
    are the tree's own ids through the parent's action already (the path builds them from the stored nodes);
    then only the rest is compared. None: compare the whole context with ``tree.context_ids`` (a walk)."""
    if not gen.token_exact:
        raise TokenDriftError("the policy backend returned text without token ids; refusing to store "
                              "re-tokenised actions (configure the server to return token ids)")
    if stored is None or node.rebuild_context or node.parent is None:
        same = tree.context_ids(node.id) == context
    else:
        same = len(context) == stored + len(node.prefix_ids) and context[stored:] == node.prefix_ids
    if not same:
        raise TokenDriftError(f"turn {node.id}: stored context differs from the context the policy saw")
    if node.action_ids != list(gen.token_ids) or len(node.logprobs) != len(node.action_ids):
        raise TokenDriftError(f"turn {node.id}: stored action differs from the sampled tokens")


def _record_failure(tree: TrajectoryTree, failure: PathFailure, path: int, node: int | None = None) -> None:
    tree.meta.setdefault("failed_paths", []).append(failure.model_copy(update={"path": path, "node": node}).model_dump())


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        try:
            return value.item()
        except Exception:
            pass
    return repr(value)


class _progress:
    """A rich progress bar over tasks, or nothing."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total

    def __enter__(self) -> Callable[[TrajectoryTree], None]:
        if not self.enabled:
            return lambda tree: None
        import sys

        if not sys.stdout.isatty():  # a log file or a pipe: plain lines, no control codes
            start, rewards = time.perf_counter(), []

            def line(tree: TrajectoryTree) -> None:
                rewards.extend(tree.leaf_reward(i) for i in tree.leaves())
                done = getattr(line, "done", 0) + 1
                line.done = done  # type: ignore[attr-defined]
                print(f"rollout {done}/{self.total} tasks  reward {sum(rewards) / max(len(rewards), 1):.2f}  "
                      f"{time.perf_counter() - start:.1f} s", flush=True)

            return line
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("rollout"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                             TextColumn("reward {task.fields[reward]:.2f}"))
        self._bar.start()
        self._task = self._bar.add_task("rollout", total=self.total, reward=0.0)
        self._rewards: list[float] = []

        def advance(tree: TrajectoryTree) -> None:
            self._rewards += [tree.leaf_reward(i) for i in tree.leaves()]
            self._bar.update(self._task, advance=1, reward=sum(self._rewards) / max(len(self._rewards), 1))

        return advance

    def __exit__(self, *exc: Any) -> None:
        if getattr(self, "_bar", None) is not None:
            self._bar.stop()
