"""Registering and making environments, on top of Gymnasium's registry.

Ids look like ``agentgym/Name-v0``. Registration is data: an id and a ``"package.module:Class"`` entry
point, imported only when the env is made. Installed packages add envs through the ``agentgym.envs``
entry-point group: each entry point names a function that calls `register`. An env or plugin that fails
to import is reported with its id and the cause; nothing is swallowed.
"""

from __future__ import annotations

import difflib
from importlib.metadata import entry_points
from typing import Any

import gymnasium
from gymnasium.envs.registration import EnvSpec

NAMESPACE = "agentgym"
ENTRY_POINT_GROUP = "agentgym.envs"

BUILTIN_ENVS: dict[str, tuple[str, dict[str, Any]]] = {
    "agentgym/Calculator-v0": ("agentgym.envs.calculator:CalculatorEnv", {}),
    "agentgym/CalculatorHermes-v0": ("agentgym.envs.calculator:CalculatorEnv", {"tool_format": "hermes"}),
    "agentgym/Python-v0": ("agentgym.envs.python:PythonEnv", {}),
    "agentgym/PythonHermes-v0": ("agentgym.envs.python:PythonEnv", {"tool_format": "hermes"}),
    "agentgym/ScienceWorld-v0": ("agentgym.envs.scienceworld:SciWorldEnv", {}),
    "agentgym/ScienceWorldHermes-v0": ("agentgym.envs.scienceworld:SciWorldEnv", {"tool_format": "hermes"}),
}


class EnvImportError(ImportError):
    """An env or an env plugin could not be imported."""


class UnknownEnvError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


_plugins_loaded = False


def register(id: str, entry_point: str, **kwargs: Any) -> None:
    """Register an env id (``namespace/Name-vN``) with a lazy ``"module:Class"`` entry point."""
    if id in gymnasium.registry:
        if gymnasium.registry[id].entry_point == entry_point:
            return  # idempotent: plugins may be loaded by several processes or twice
        raise ValueError(f"env id {id!r} is already registered to {gymnasium.registry[id].entry_point}")
    gymnasium.register(id=id, entry_point=entry_point, disable_env_checker=True, kwargs=kwargs)


def register_builtin_envs() -> None:
    for env_id, (entry_point, kwargs) in BUILTIN_ENVS.items():
        register(env_id, entry_point, **kwargs)


def load_plugins() -> None:
    """Run every ``agentgym.envs`` entry point once per process."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    register_builtin_envs()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            hook = ep.load()
            hook()
        except Exception as e:
            raise EnvImportError(f"env plugin {ep.name!r} ({ep.value}) failed to load: {type(e).__name__}: {e}") from e
    _plugins_loaded = True


def list_envs(namespace: str | None = NAMESPACE) -> list[str]:
    """Registered env ids (only ours by default; ``namespace=None`` lists all of Gymnasium's)."""
    load_plugins()
    return sorted(i for i, spec in gymnasium.registry.items() if namespace is None or spec.namespace == namespace)


def spec(env_id: str) -> EnvSpec:
    load_plugins()
    if env_id not in gymnasium.registry:
        close = difflib.get_close_matches(env_id, list(gymnasium.registry), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else f" Registered: {', '.join(list_envs())}."
        raise UnknownEnvError(f"unknown env id {env_id!r}.{hint}")
    return gymnasium.registry[env_id]


def make(env_id: str, **kwargs: Any) -> gymnasium.Env:
    """Create an env by id. Returns the env itself (no wrappers) so its async twins and `fork` are reachable;
    wrap it yourself if you want Gymnasium's wrappers."""
    env_spec = spec(env_id)
    try:
        env = gymnasium.make(env_spec, disable_env_checker=True, **kwargs)
    except (ImportError, AttributeError, ModuleNotFoundError) as e:
        raise EnvImportError(f"env {env_id!r} ({env_spec.entry_point}) failed to import: {type(e).__name__}: {e}") from e
    return env.unwrapped
