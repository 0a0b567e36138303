"""Registering and making environments, on top of Gymnasium's registry.

Ids look like ``agentgym/Name-v0``. Registration is data: an id and a ``"package.module:Class"`` entry
point, imported only when the env is made. Installed packages add envs through the ``agentgym.envs``
entry-point group: each entry point names a function that calls `register`. An env or plugin that fails
to import is reported with its id and the cause; nothing is swallowed.

``import agentgym`` runs `load_plugins`, so ``gymnasium.make("agentgym/Python-v0")`` (or any plugin's id)
works in a fresh process, as with Gymnasium's own packages. A plugin whose hook raises does not break the
import nor commands about other envs: it is recorded (`plugin_errors`), warned about once
(`PluginLoadWarning`), printed by every CLI command, and named in the error of a lookup that might have
been its env.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import gymnasium
from gymnasium.envs.registration import EnvSpec, load_env_creator

NAMESPACE = "agentgym"
ENTRY_POINT_GROUP = "agentgym.envs"

BUILTIN_ENVS: dict[str, tuple[str, dict[str, Any]]] = {
    "agentgym/Calculator-v0": ("agentgym.envs.calculator:CalculatorEnv", {}),
    "agentgym/CalculatorHermes-v0": ("agentgym.envs.calculator:CalculatorEnv", {"tool_format": "hermes"}),
    "agentgym/Python-v0": ("agentgym.envs.python:PythonEnv", {}),
    "agentgym/PythonHermes-v0": ("agentgym.envs.python:PythonEnv", {"tool_format": "hermes"}),
    "agentgym/WebSearch-v0": ("agentgym.envs.web_search:WebSearchEnv", {}),
    "agentgym/DeepResearch-v0": ("agentgym.envs.deep_research:DeepResearchEnv", {}),
    "agentgym/DeepResearchReAct-v0": ("agentgym.envs.deep_research:DeepResearchReActEnv", {}),
    "agentgym/ScienceWorld-v0": ("agentgym.envs.scienceworld:SciWorldEnv", {}),
    "agentgym/ScienceWorldHermes-v0": ("agentgym.envs.scienceworld:SciWorldEnv", {"tool_format": "hermes"}),
    "agentgym/Android-v0": ("agentgym.envs.android:AndroidEnv", {}),
    "agentgym/AndroidScreenshots-v0": ("agentgym.envs.android:AndroidEnv", {"screenshots": True}),
    "agentgym/MiniWoB-v0": ("agentgym.envs.browser:MiniWoBEnv", {}),
    "agentgym/MiniWoBScreenshots-v0": ("agentgym.envs.browser:MiniWoBEnv", {"screenshots": True}),
}


class EnvImportError(ImportError):
    """An env or an env plugin could not be imported."""


class EnvKwargsError(ValueError):
    """The keyword arguments given for an env (``--env-kwarg``, ``env.kwargs`` in a config) are wrong."""


class UnknownEnvError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PluginLoadWarning(UserWarning):
    """An ``agentgym.envs`` plugin failed to load; its envs are missing, every other env works."""


@dataclass(frozen=True)
class PluginError:
    name: str  # the entry point's name
    target: str  # "module:function"
    error: str  # "ExceptionType: message"

    def __str__(self) -> str:
        return f"env plugin {self.name!r} ({self.target}) failed to load: {self.error}"


_plugins_loaded = False
_loading: str = "user"  # origin recorded for ids registered right now: "builtin", a plugin name, or "user"
_origins: dict[str, str] = {}  # env id -> who registered it through `register`
_plugin_errors: list[PluginError] = []


def register(id: str, entry_point: str, **kwargs: Any) -> None:
    """Register an env id (``namespace/Name-vN``) with a lazy ``"module:Class"`` entry point.

    Registering the same id to the same entry point again is a no-op (plugins may be loaded twice); to a
    different entry point it is an error."""
    if id in gymnasium.registry:
        if gymnasium.registry[id].entry_point == entry_point:
            _origins.setdefault(id, _loading)
            return
        raise ValueError(f"env id {id!r} is already registered to {gymnasium.registry[id].entry_point}")
    gymnasium.register(id=id, entry_point=entry_point, disable_env_checker=True, kwargs=kwargs)
    _origins[id] = _loading


def register_builtin_envs() -> None:
    global _loading
    _loading = "builtin"
    try:
        for env_id, (entry_point, kwargs) in BUILTIN_ENVS.items():
            register(env_id, entry_point, **kwargs)
    finally:
        _loading = "user"


def load_plugins() -> None:
    """Register the built-in envs and run every ``agentgym.envs`` entry point, once per process.

    A plugin that fails is recorded and warned about (`plugin_errors`), never raised: one broken
    third-party package must not break ``import agentgym`` or commands about other envs."""
    global _plugins_loaded, _loading
    if _plugins_loaded:
        return
    _plugins_loaded = True  # set first: a plugin hook that imports agentgym must not recurse
    register_builtin_envs()
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        _loading = ep.name
        try:
            ep.load()()
        except Exception as e:
            problem = PluginError(ep.name, ep.value, f"{type(e).__name__}: {e}")
            _plugin_errors.append(problem)
            # one line on stderr naming the plugin (no source line): every command and script shows it
            warnings.warn_explicit(str(problem), PluginLoadWarning, f"<agentgym plugin {ep.name}>", 0)
        finally:
            _loading = "user"


def plugin_errors() -> list[PluginError]:
    """Plugins of the ``agentgym.envs`` group that failed to load in this process."""
    load_plugins()
    return list(_plugin_errors)


def env_origin(env_id: str) -> str:
    """Who registered `env_id`: ``"builtin"``, the name of the plugin entry point, or ``"user"``."""
    return _origins.get(env_id, "gymnasium")


def list_envs(namespace: str | None = None) -> list[str]:
    """Env ids registered through agentgym (built-in, every plugin, and `register` calls), optionally only
    those of one namespace (``"agentgym"``, ``"mypkg"``). Gymnasium's own envs are not listed."""
    load_plugins()
    return sorted(i for i in _origins if i in gymnasium.registry
                  and (namespace is None or gymnasium.registry[i].namespace == namespace))


def namespaces() -> list[str]:
    """Namespaces that have at least one agentgym env."""
    return sorted({gymnasium.registry[i].namespace or "" for i in list_envs()})


def spec(env_id: str) -> EnvSpec:
    load_plugins()
    if env_id not in gymnasium.registry:
        close = difflib.get_close_matches(env_id, list(gymnasium.registry), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else f" Registered: {', '.join(list_envs())}."
        broken = "".join(f" ({e})" for e in _plugin_errors)  # the env may belong to a plugin that failed
        raise UnknownEnvError(f"unknown env id {env_id!r}.{hint}{broken}")
    return gymnasium.registry[env_id]


def check_env_kwargs(env_id: str, kwargs: dict[str, Any]) -> None:
    """Fail with one line naming the bad key before any work starts: an argument the env's constructor does
    not take (with the nearest one it does), or a value it rejects when the env is made once and closed.
    Shared by `agentgym run` and training configs."""
    import inspect

    import pydantic

    env_spec = spec(env_id)
    try:
        creator = load_env_creator(env_spec.entry_point) if isinstance(env_spec.entry_point, str) else env_spec.entry_point
    except (ImportError, AttributeError) as e:
        raise EnvImportError(f"env {env_id!r} ({env_spec.entry_point}) failed to import: {type(e).__name__}: {e}") from e
    try:
        params = inspect.signature(creator).parameters
    except (TypeError, ValueError):
        params = {}
    if params and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        for key in kwargs:
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise EnvKwargsError(f"env {env_id!r} has no argument {key!r}; {hint}it takes: {', '.join(accepted)}")
    try:
        make(env_id, **kwargs).close()
    except (TypeError, ValueError, pydantic.ValidationError) as e:
        detail = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise EnvKwargsError(f"env {env_id!r} rejected its arguments {kwargs}: {type(e).__name__}: {detail}") from e


def make(env_id: str, **kwargs: Any) -> gymnasium.Env:
    """Create an env by id. Returns the env itself (no wrappers) so its async twins and `fork` are reachable;
    wrap it yourself if you want Gymnasium's wrappers."""
    env_spec = spec(env_id)
    try:
        env = gymnasium.make(env_spec, disable_env_checker=True, **kwargs)
    except (ImportError, AttributeError, ModuleNotFoundError) as e:
        raise EnvImportError(f"env {env_id!r} ({env_spec.entry_point}) failed to import: {type(e).__name__}: {e}") from e
    return env.unwrapped

