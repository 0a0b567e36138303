"""ScienceWorld as an agentgym text env: 30 elementary-science tasks in a simulated house (boil water,
grow a plant, build a circuit, ...), driven by text commands.

Observation: the task description and the result of "look around" on reset, then the game's reply to each
command; ``show=("look", "inventory", "task")`` appends those (free actions that take no game time) to
every observation. Action: a command such as ``open door to kitchen`` — the whole message (``tool_format=
"text"``) or the ``act`` tool (``"xml"``: ``<act>open door to kitchen</act>``; ``"hermes"``: a JSON tool
call). Hints: the command ``valid actions`` lists what the game accepts right now (computing that list is
~90 % of the package's step time, so it happens only when asked, or every step with ``hints=True``).
Reward: score change / 100 (so a solved task sums to 1). Terminated when the task is completed or failed
(score < 0); truncated at ``limits.max_turns`` (default 100, the package's own step limit).

Episode choice: ``task`` (a name from `TASKS`, or None to draw one per episode), ``split`` (train/dev/test
variations, as the package defines them) and ``variation`` (an index, or None to draw one from the split);
``reset(options={"task": {"name": ..., "variation": ...}})`` picks one explicitly. ``simplifications`` is
the package's string ("easy" or a comma list of teleportAction, openDoors, openContainers,
selfWateringFlowerPots, noElectricalAction). The gold action sequence of the current episode is
`gold_actions()`; the scripted expert (`expert.py`) plays it from the conversation.

Identical to the package: observations, scores and termination equal those of the package's
`ScienceWorldEnv.step` on the same commands, for every task. Where the world has random actors (bees), the
package's per-step valid-action query shifts the world's random numbers (the bees'); ``package_random=True``
(default) replays those draws after each step, overlapping the agent's next generation (see `simulator.py`);
False skips them (the bees then fly as if no one had listed valid actions).
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable

from agentgym.env import EnvLimits, TextEnv
from agentgym.envs.scienceworld.expert import gold_path, header
from agentgym.envs.scienceworld.jvm import JVMConfig, JVMDiedError
from agentgym.envs.scienceworld.simulator import Simulator, StepResult
from agentgym.parsing import make_parser
from agentgym.tools import tool
from agentgym.trajectory import Observation, ToolCallRecord

SPLITS = ("train", "dev", "test")
SHOWABLE = ("task", "look", "inventory")
SIMPLIFICATIONS = ("teleportAction", "openDoors", "openContainers", "selfWateringFlowerPots", "noElectricalAction")
HINT_COMMANDS = ("valid actions", "valid", "hints", "help")


def task_names() -> list[str]:
    """The 30 task names, in the package's order (read from its task table; no JVM needed)."""
    try:
        from scienceworld.constants import ID2TASK
    except ImportError as e:
        raise ImportError("the ScienceWorld env needs the scienceworld package: "
                          "pip install 'agentgym[scienceworld]'") from e

    return list(ID2TASK.values())


def act(command: str) -> str:
    """Do one thing in the ScienceWorld simulation.

    Args:
        command: A ScienceWorld command, e.g. "look around", "open door to kitchen", "pick up thermometer",
            "focus on water", or "valid actions" to list the commands possible now.
    """
    raise NotImplementedError  # only its schema is shown (hermes format): the env runs the command itself


_HOW = {"text": "Reply with exactly one command per message, nothing else.",
        "xml": "Give one command per message in <act></act>, e.g. <act>look around</act>.",
        "hermes": 'Give one command per message as a tool call: <tool_call>{"name": "act", "arguments": '
                  '{"command": "look around"}}</tool_call>.'}
_splits_cache: dict[str, dict[str, list[int]]] = {}
_cache_lock = threading.Lock()


class SciWorldEnv(TextEnv):
    """ScienceWorld tasks as a text env (see the module docstring)."""

    def __init__(self, task: str | None = None, split: str = "train", variation: int | None = None,
                 simplifications: str | list[str] | tuple[str, ...] = "", tool_format: str = "text",
                 show: tuple[str, ...] | list[str] = (), hints: bool = False, jvm: JVMConfig | dict | None = None,
                 package_random: bool = True, limits: EnvLimits | dict | None = None, render_mode: str | None = None):
        super().__init__(limits=limits or EnvLimits(max_turns=100, max_tokens_per_turn=64,
                                                    max_tokens_per_episode=8192), render_mode=render_mode)
        names = task_names()
        self.task_name = _canonical_task(task, names) if task is not None else None
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if variation is not None and (not isinstance(variation, int) or variation < 0):
            raise ValueError(f"variation must be a non-negative integer or None, got {variation!r}")
        if tool_format not in ("text", "xml", "hermes"):
            raise ValueError(f"tool_format must be 'text', 'xml' or 'hermes', got {tool_format!r}")
        unknown = [s for s in show if s not in SHOWABLE]
        if unknown:
            raise ValueError(f"show: unknown item(s) {unknown}; choose from {SHOWABLE}")
        self.split, self.variation, self.tool_format = split, variation, tool_format
        self.simplifications = _simplification_str(simplifications)
        if self.task_name and "noElectricalAction" in self.simplifications and (
                "power-component" in self.task_name or "conductivity" in self.task_name):
            raise ValueError(f"simplification noElectricalAction cannot be used with task {self.task_name!r}: "
                             "it needs electrical actions")
        self.show, self.hints = tuple(show), bool(hints)
        if not isinstance(package_random, bool):
            raise ValueError(f"package_random must be true or false, got {package_random!r}")
        self.package_random = package_random
        self.jvm_config = jvm if isinstance(jvm, JVMConfig) else JVMConfig(**(jvm or {}))
        self.parser = make_parser(tool_format, ["act"]) if tool_format != "text" else None
        self._sim: Simulator | None = None
        self.episode: dict[str, Any] = {}

    # ---- prompts ----------------------------------------------------------------------------------
    def system_prompt(self) -> str:
        how = _HOW[self.tool_format]
        if self.tool_format == "hermes":
            how += f" Tool: {json.dumps(tool(act).schema['function'])}"
        return ("You are an agent in ScienceWorld, a simulated environment for elementary science tasks. "
                "Act with text commands such as: look around, inventory, task, go to LOCATION, open OBJ, "
                "pick up OBJ, move OBJ to OBJ, pour OBJ into OBJ, activate OBJ, use OBJ on OBJ, focus on OBJ, "
                "connect OBJ to OBJ, wait, wait1. Focus only on the object the task names: focusing on the "
                f"wrong one fails the task. Say 'valid actions' to list every command possible now. {how}")

    def stop_strings(self) -> list[str]:
        return self.parser.stop_strings() if self.parser else []

    # ---- episodes ---------------------------------------------------------------------------------
    def _simulator(self) -> Simulator:
        if self._sim is not None and not self._sim.alive:  # the JVM died: start over in a working one
            self._sim.close()
            self._sim = None
        if self._sim is None:
            self._sim = Simulator(self.jvm_config)
        return self._sim

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        chosen = dict((options or {}).get("task") or {})
        unknown = set(chosen) - {"name", "variation", "simplifications"}
        if unknown:
            raise ValueError(f"reset options['task']: unknown key(s) {sorted(unknown)}; use name, variation, "
                             "simplifications")
        sim = self._simulator()
        names = task_names()
        name = _canonical_task(chosen["name"], names) if "name" in chosen else \
            self.task_name or names[int(self.np_random.integers(len(names)))]
        simplifications = _simplification_str(chosen.get("simplifications", self.simplifications))
        if "variation" in chosen:
            variation = int(chosen["variation"])
        elif self.variation is not None:
            variation = self.variation
        else:
            pool = self.variations(name, self.split)
            variation = pool[int(self.np_random.integers(len(pool)))]
        limit = sim.max_variations(name)
        if not 0 <= variation < limit:
            raise ValueError(f"variation {variation} is out of range for task {name!r} (0..{limit - 1})")
        sim.load(name, variation, simplifications, package_random=self.package_random)
        first = sim.step("look around")  # as the package's reset
        self.episode = {"name": name, "variation": variation, "simplifications": simplifications}
        obs = (f"{header(name, variation, simplifications)}\n{sim.task_description().strip()}\n\n"
               f"{first.observation.strip()}")
        obs = self._with_extras(obs, sim)
        return obs, {"task": dict(self.episode), "score": first.score, "moves": first.moves}

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        role = {"text": "user", "xml": "inline", "hermes": "tool"}[self.tool_format]
        command, problem = self._command(action)
        if problem is not None:
            record = ToolCallRecord(name="act", error_type="parse_error", error=problem, output=problem)
            return problem, 0.0, False, self._info(problem, role, [record], None)
        sim = self._sim
        assert sim is not None
        if command.strip().lower() in HINT_COMMANDS:
            text = "Valid actions: " + ", ".join(sim.valid_actions())
            return self._format(text), 0.0, False, self._info(self._format(text), role, self._records(command, text), None)
        result = sim.step(command)
        text = self._with_extras(result.observation.strip(), sim)
        if self.hints and not result.completed:
            text += "\nValid actions: " + ", ".join(sim.valid_actions())
        obs = self._format(text)
        return obs, result.reward / 100.0, result.completed, self._info(obs, role, self._records(command, text), result)

    # ---- helpers ----------------------------------------------------------------------------------
    def _command(self, action: str) -> tuple[str, str | None]:
        if self.parser is None:
            return action.strip(), None
        parsed = self.parser.parse(action)
        if parsed.errors:
            return "", f"Error: {parsed.errors[0].message}"
        if not parsed.calls:
            return "", ("No command found. " + _HOW[self.tool_format] if parsed.answer is None
                        else "ScienceWorld has no final answer: finish the task with commands.")
        call = parsed.calls[0]
        if call.name != "act":
            return "", f"Error: unknown tool {call.name!r}; the only tool is 'act'."
        args = call.arguments
        command = args if isinstance(args, str) else args.get("command")
        if not isinstance(command, str) or not command.strip():
            return "", 'Error: act needs a non-empty "command" string.'
        return command.strip(), None

    def _format(self, text: str) -> str:
        if self.parser is None:
            return text
        return self.parser.format_result(None, text)  # type: ignore[arg-type]

    def _with_extras(self, text: str, sim: Simulator) -> str:
        parts = [text]
        for item in self.show:
            fn: Callable[[], str] = {"task": sim.task_description, "look": sim.look, "inventory": sim.inventory}[item]
            parts.append(fn().strip())
        return "\n\n".join(parts)

    def _records(self, command: str, output: str) -> list[ToolCallRecord]:
        return [ToolCallRecord(name="act", arguments={"command": command}, output=output)] if self.parser else []

    def _info(self, obs: str, role: str, records: list[ToolCallRecord], result: StepResult | None) -> dict[str, Any]:
        info: dict[str, Any] = {"tool_calls": [r.model_dump() for r in records],
                                "observation": Observation(text=obs, role=role).model_dump(),
                                "task": dict(self.episode)}
        if result is not None:
            info.update(score=result.score, moves=result.moves, won=result.completed and result.score >= 100)
        return info

    # ---- extras -----------------------------------------------------------------------------------
    def variations(self, task: str, split: str = "train") -> list[int]:
        """Variation indices of a task in a split (the package's train/dev/test division)."""
        name = _canonical_task(task, task_names())
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        with _cache_lock:
            cached = _splits_cache.get(name)
        if cached is None:
            sim = self._simulator()
            sim.load(name, 0, "", package_random=False)
            cached = sim.splits()
            with _cache_lock:
                _splits_cache[name] = cached
        return list(cached[split])

    def gold_actions(self) -> list[str]:
        """The package's gold action sequence for the current episode (computed in a separate simulator, so
        the episode is not disturbed; cached per task, variation and simplifications)."""
        if not self.episode:
            raise RuntimeError("gold_actions() needs an episode: call reset() first")
        return gold_path(self.episode["name"], self.episode["variation"], self.episode["simplifications"],
                         self.jvm_config)

    @property
    def expert(self) -> str:
        """Scripted agent for `agentgym check-env` and SFT data: plays the gold path from the conversation."""
        return "agentgym.envs.scienceworld.expert:gold_expert"

    def fork(self) -> None:
        """ScienceWorld has no way to copy a running simulation (its world objects are neither cloneable nor
        serialisable), so branching replays the action prefix in a fresh env (the engine does it)."""
        return None

    def close(self) -> None:
        if self._sim is not None:
            self._sim.close()
            self._sim = None
        super().close()


def _canonical_task(task: str, names: list[str]) -> str:
    from scienceworld.utils import infer_task

    name = infer_task(str(task))
    if name not in names:
        import difflib

        close = difflib.get_close_matches(name, names, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else f" Tasks: {', '.join(names)}."
        raise ValueError(f"unknown ScienceWorld task {task!r}.{hint}")
    return name


def _simplification_str(value: str | list[str] | tuple[str, ...]) -> str:
    items = [s.strip() for s in (value.split(",") if isinstance(value, str) else value) if s.strip()]
    for item in items:
        if item != "easy" and item not in SIMPLIFICATIONS:
            raise ValueError(f"unknown simplification {item!r}; choose from {('easy',) + SIMPLIFICATIONS}")
    return ",".join(items)



