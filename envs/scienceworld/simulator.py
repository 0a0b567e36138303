"""One ScienceWorld simulator (a ``PythonInterface`` object in a shared JVM) with a fast step.

The package's `ScienceWorldEnv.step` calls the server's ``step`` and then, every step, ``look``,
``inventory``, the task description and the valid-action list: about 780 py4j round trips, ~90 % of a
~70 ms step. `Simulator.step` makes the same four calls the package uses for the outcome (``step``,
``getScore``, ``getCompleted``, ``getNumMoves``) and applies the same rules (score rounded to 0-100,
reward = score change, failure when the score is negative), so observations, scores and termination are
identical; the rest is computed only when asked for (`valid_actions`, `look`, `inventory`).

Sharing a JVM: ``PythonInterface.load`` resets three JVM-wide singletons that the simulation then keeps
using — the object-id counter (``util.UniqueIdentifier``; objects compare equal by id), the random
generator (``scala.util.Random``, seeded with the variation) and the active simplifications
(``SimplifierProcessor``, e.g. self-watering pots are applied every tick). Another simulator loading in
the same JVM would change all three under this one's feet (found with ``javap`` on the package's jar).
So each simulator owns a copy of them: when a different simulator than the last one calls into the JVM,
the previous owner's values are saved and the caller's restored (10 py4j calls, only on a switch), which
makes a shared-JVM episode identical to one in a JVM of its own (tested by interleaving two episodes).

The package's valid-action query is not neutral: naming objects uniquely (``InputParser.
chooseUniqueReferents``) draws from that same JVM-wide random generator (~450 draws a step), and every world
has random actors (the bees outside fly and pollinate; pollinated plants get random genetic traits), so the
world evolves differently depending on whether someone listed the valid actions (on the gold paths of
grow-fruit and mendelian-genetics-known-plant the observations differ from step ~60 on). To stay identical to
the package's step, `Simulator.step` makes the query's calls that draw — the referent tables of the visible
objects and of the whole universe, ~40 % of its JVM time, without building and transferring the ~4,000
action strings — after the step's outcome has been read, on a background thread: the step returns first and
the draws overlap the agent's next generation; the next call into the simulator waits for them
(``package_random=False`` skips them). `valid_actions` leaves the generator as it found it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from agentgym.envs.scienceworld.jvm import POOL, JVM, JVMConfig, JVMDiedError

T = TypeVar("T")


@dataclass
class StepResult:
    """What the package's `step` returns, minus the per-step extras (look, inventory, valid actions)."""

    observation: str
    score: int  # 0-100 (negative on failure)
    reward: int  # score change since the previous step
    completed: bool  # the task was completed or failed (score < 0), as the package reports it
    moves: int


@dataclass
class _Globals:
    counter: int
    seed: int
    next_gaussian: float
    have_next_gaussian: bool
    simplifications: str


_RANDOM_MULTIPLIER = 0x5DEECE66D  # java.util.Random's LCG multiplier


class _JVMState:
    """Reads and writes the JVM-wide state a loaded simulator depends on (see the module docstring)."""

    def __init__(self, jvm: JVM):
        j = jvm.gateway.jvm
        cls = j.java.lang.Class
        self.ids = j.util.UniqueIdentifier
        self.simplifier = j.main.scala.scienceworld.runtime.SimplifierProcessor
        self.random = cls.forName("scala.util.Random$").getField("MODULE$").get(None).self()
        fields = {}
        for name in ("seed", "nextNextGaussian", "haveNextNextGaussian"):
            fields[name] = cls.forName("java.util.Random").getDeclaredField(name)
            fields[name].setAccessible(True)
        self.fields = fields

    def save(self) -> _Globals:
        return _Globals(counter=self.ids.count(), seed=int(self.fields["seed"].get(self.random)),
                        next_gaussian=self.fields["nextNextGaussian"].getDouble(self.random),
                        have_next_gaussian=self.fields["haveNextNextGaussian"].getBoolean(self.random),
                        simplifications=self.simplifier.getSimplificationsUsed())

    def restore(self, g: _Globals) -> None:
        getattr(self.ids, "count_$eq")(g.counter)
        self.random.setSeed(g.seed ^ _RANDOM_MULTIPLIER)  # setSeed scrambles with the multiplier: undo it
        self.fields["nextNextGaussian"].setDouble(self.random, g.next_gaussian)
        self.fields["haveNextNextGaussian"].setBoolean(self.random, g.have_next_gaussian)
        self.simplifier.parseSimplificationStr(g.simplifications.replace(" ", ""))


class _PackageDraws:
    """Replays the random draws of ``AgentInterface.getValidActionObjectCombinations`` (which the package's
    `step` calls every step) without building the action list: its two ``getAllUniqueReferentsLUTObjList``
    calls, with the same arguments, in the same order (read from the jar's bytecode)."""

    def __init__(self, jvm: JVM):
        cls = jvm.gateway.jvm.java.lang.Class
        self.parser = cls.forName("scienceworld.input.InputParser$").getField("MODULE$").get(None)
        self.env_object = cls.forName("scala.reflect.ClassTag$").getField("MODULE$").get(None).apply(
            cls.forName("scienceworld.struct.EnvObject"))

    def consume(self, server: Any) -> None:
        agent = server.agentInterface().get()
        parser = agent.inputParser()
        if parser.isInAmbiguousState():  # the query then lists the numbered choices: no draws
            return
        container = agent.getAgentVisibleObjects(False)._2
        for root, everything in ((container, False), (agent.universe(), True)):
            objects = self.parser.collectObjects(root, everything).toArray(self.env_object)
            parser.getAllUniqueReferentsLUTObjList(objects, container, True, True)


class Simulator:
    """A ScienceWorld simulator in a pooled JVM. Not for concurrent use by several threads itself (one env
    owns it); simulators in one JVM may be used from different threads (calls are serialised per JVM)."""

    def __init__(self, config: JVMConfig | None = None):
        self.config = config or JVMConfig()
        self.jvm = POOL.acquire(self.config)
        self._closed = False
        self._saved: _Globals | None = None  # this simulator's JVM-wide state while another one runs
        self.last_score = 0
        self.package_random = True  # replay the package's per-step draws (set by `load`)
        self._draws: threading.Thread | None = None  # the last step's draws, running in the JVM
        self._draws_error: BaseException | None = None
        try:
            self.server = self._call(lambda: self.jvm.gateway.jvm.scienceworld.runtime.pythonapi.PythonInterface())
            if not hasattr(self.jvm, "state"):
                self.jvm.state = self._call(lambda: _JVMState(self.jvm))  # type: ignore[attr-defined]
                self.jvm.draws = self._call(lambda: _PackageDraws(self.jvm))  # type: ignore[attr-defined]
        except BaseException:
            self.close()
            raise

    # ---- calls into the JVM -----------------------------------------------------------------------
    def _call(self, fn: Callable[[], T]) -> T:
        self._settle()
        return self._run(fn)

    def _settle(self) -> None:
        """Wait for the previous step's deferred draws; their failure (a JVM that died) is this call's."""
        draws, self._draws = self._draws, None
        if draws is not None:
            draws.join()
        error, self._draws_error = self._draws_error, None
        if error is not None:
            raise error

    def _replay_draws(self) -> None:
        try:
            self._run(lambda: self.jvm.draws.consume(self.server))  # type: ignore[attr-defined]
        except BaseException as e:  # reported by the next call (`_settle`)
            self._draws_error = e

    def _run(self, fn: Callable[[], T]) -> T:
        from py4j.protocol import Py4JError, Py4JNetworkError

        if self._closed:
            raise RuntimeError("the simulator is closed")
        jvm = self.jvm
        if not jvm.alive():
            raise JVMDiedError(f"the ScienceWorld JVM (pid {jvm.pid}) is not running "
                               f"(exit code {jvm.proc.poll()}; stderr: {jvm.stderr_tail()}); reset() starts a new one")
        with jvm.lock:
            try:
                if jvm.owner is not self and hasattr(jvm, "state"):
                    self._switch_in()
                return fn()
            except Py4JNetworkError as e:
                jvm.dead = True
                raise JVMDiedError(f"lost the ScienceWorld JVM (pid {jvm.pid}, exit code {jvm.proc.poll()}; "
                                   f"stderr: {jvm.stderr_tail()}): {e}; reset() starts a new one") from e
            except Py4JError as e:
                if not jvm.alive() or "Gateway" in str(e) and jvm.proc.poll() is not None:
                    jvm.dead = True
                    raise JVMDiedError(f"the ScienceWorld JVM (pid {jvm.pid}) died: {e}; reset() starts a new one") from e
                raise

    def _switch_in(self) -> None:
        jvm = self.jvm
        state: _JVMState = jvm.state  # type: ignore[attr-defined]
        previous = jvm.owner
        if isinstance(previous, Simulator) and not previous._closed:
            previous._saved = state.save()
        if self._saved is not None:
            state.restore(self._saved)
            self._saved = None
        jvm.owner = self

    # ---- the simulator API ------------------------------------------------------------------------
    def load(self, task: str, variation: int, simplifications: str = "", gold: bool = False,
             package_random: bool = True) -> None:
        """Load a task variation (as the package's `load`; the caller validates the arguments). Any saved
        state is void: loading resets the JVM-wide state, and this simulator now owns it.

        ``package_random``: after every step, replay the random draws the package's step makes (identical
        results to the package); False skips them (less JVM work; the bees then fly as if nobody had listed
        the valid actions, so longer episodes differ from the package's).
        """
        if not isinstance(package_random, bool):
            raise ValueError(f"package_random must be true or false, got {package_random!r}")
        self._saved = None
        self._call(lambda: self.server.load(task, variation, simplifications, gold))
        self.last_score = 0
        self.package_random = package_random

    def step(self, action: str) -> StepResult:
        def run() -> StepResult:
            obs = self.server.step(action)
            score = int(round(100 * self.server.getScore()))  # the package's conversion from 0-1 to 0-100
            completed = bool(self.server.getCompleted())
            moves = int(self.server.getNumMoves())
            return StepResult(obs, score, 0, completed or score < 0, moves)

        result = self._call(run)
        if self.package_random:  # after the outcome is read, as the package queries after its step
            self._draws = threading.Thread(target=self._replay_draws, name="scienceworld-draws", daemon=True)
            self._draws.start()
        result.reward = result.score - self.last_score
        self.last_score = result.score
        return result

    def task_description(self) -> str:
        return self._call(self.server.freeActionTaskDesc)

    def look(self) -> str:
        return self._call(self.server.freeActionLook)

    def inventory(self) -> str:
        return self._call(self.server.freeActionInventory)

    def valid_actions(self) -> list[str]:
        """The commands the game accepts now. Leaves the world's random generator as it was (the query draws
        from it), so asking for hints never changes what happens next; the list crosses py4j as one string."""
        def run() -> list[str]:
            state: _JVMState = self.jvm.state  # type: ignore[attr-defined]
            before = state.save()
            actions = self.jvm.gateway.jvm.java.lang.String.join("\n", self.server.getValidActionObjectCombinations())
            state.restore(before)
            return actions.split("\n") if actions else []

        return self._call(run)

    def gold_actions(self) -> list[str]:
        """The gold action sequence of the loaded task (it must have been loaded with ``gold=True``)."""
        return self._call(lambda: [str(a) for a in self.server.getGoldActionSequence()])

    def splits(self) -> dict[str, list[int]]:
        """Train/dev/test variation indices of the loaded task."""
        return self._call(lambda: {"train": [int(v) for v in self.server.getVariationsTrain()],
                                   "dev": [int(v) for v in self.server.getVariationsDev()],
                                   "test": [int(v) for v in self.server.getVariationsTest()]})

    def max_variations(self, task: str) -> int:
        return self._call(lambda: int(self.server.getTaskMaxVariations(task)))

    def possible_simplifications(self) -> list[str]:
        return self._call(lambda: str(self.server.getPossibleSimplifications()).split(", "))

    def goal_progress(self) -> str:
        return self._call(self.server.getGoalProgressStr)

    def call(self, method: str, *args: Any) -> Any:
        """Any other ``PythonInterface`` method, under this simulator's JVM lock and state."""
        return self._call(lambda: getattr(self.server, method)(*args))

    # ---- lifetime ---------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return not self._closed and self.jvm.alive()

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._settle()
        except Exception:
            pass  # a JVM that died during the draws is shut down below all the same
        jvm = self.jvm
        with jvm.lock:
            if jvm.owner is self:
                jvm.owner = None
            server = getattr(self, "server", None)
            if server is not None and jvm.alive():
                try:
                    jvm.gateway.detach(server)  # let the JVM free this simulator's world
                except Exception:
                    pass
            self._closed = True
        POOL.release(jvm)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
