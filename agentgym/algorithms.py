"""Registering training algorithms by name, like envs: installed packages add algorithms through the
``agentgym.algorithms`` entry-point group, without touching this project.

An entry point names an object with ``name`` (the algorithm's name), ``config`` (its pydantic config class,
a subclass of `agentgym.config.AlgorithmConfig` with ``name: Literal["<name>"]``) and ``build`` (what the
trainer calls to compose the algorithm; see `agentgym.trainers.algorithm.AlgorithmPlugin`). The built-in
GRPO and ARPO are declared in this project's pyproject.toml the same way. Entry points are loaded only
when their name is asked for, so a plugin that fails to import breaks nothing but itself, and the error
names it. `register_algorithm` adds one in-process (tests, notebooks).
"""

from __future__ import annotations

import difflib
from importlib.metadata import entry_points
from typing import Any, Protocol

ENTRY_POINT_GROUP = "agentgym.algorithms"


class AlgorithmError(ValueError):
    """An algorithm name is unknown, or its plugin failed to import or is malformed."""


class AlgorithmSpec(Protocol):
    name: str
    config: type  # a subclass of agentgym.config.AlgorithmConfig


_registered: dict[str, Any] = {}  # name -> spec, registered in-process (take precedence over entry points)
_loaded: dict[str, Any] = {}  # name -> spec loaded from an entry point


def register_algorithm(spec: Any) -> None:
    """Register an algorithm spec in this process (the entry-point group is the way for packages)."""
    _check(spec, spec.name, "register_algorithm")
    _registered[spec.name] = spec


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def algorithm_names() -> list[str]:
    """Every registered name (entry points are listed without importing them)."""
    return sorted(set(_registered) | set(_entry_points()))


def algorithm_spec(name: str) -> Any:
    """The spec registered under `name`; AlgorithmError naming the registered ones, or the broken plugin."""
    if name in _registered:
        return _registered[name]
    if name in _loaded:
        return _loaded[name]
    eps = _entry_points()
    if name not in eps:
        names = algorithm_names()
        near = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        listed = ", ".join(names) or "none (is agentgym installed? `pip install -e .` declares the built-ins)"
        raise AlgorithmError(f"unknown algorithm {name!r}; {hint}registered: {listed}")
    ep = eps[name]
    try:
        spec = ep.load()
    except Exception as e:
        raise AlgorithmError(f"algorithm plugin {name!r} ({ep.value}) failed to import: "
                             f"{type(e).__name__}: {e}") from e
    _check(spec, name, ep.value)
    _loaded[name] = spec
    return spec


def _check(spec: Any, name: str, where: str) -> None:
    from agentgym.config import AlgorithmConfig

    config = getattr(spec, "config", None)
    if getattr(spec, "name", None) != name or not (isinstance(config, type) and issubclass(config, AlgorithmConfig)):
        raise AlgorithmError(f"algorithm plugin {name!r} ({where}) must be an object with name={name!r} and a "
                             f"config class derived from agentgym.config.AlgorithmConfig")
    if config.model_fields["name"].default != name:
        raise AlgorithmError(f"algorithm plugin {name!r} ({where}): its config's `name` must default to {name!r}")


def key_owner(key: str, exclude: str) -> str | None:
    """The first registered algorithm (other than `exclude`) whose config has `key`; plugins that fail to
    import are skipped here (they are reported when named)."""
    for name in algorithm_names():
        if name == exclude:
            continue
        try:
            if key in algorithm_spec(name).config.model_fields:
                return name
        except AlgorithmError:
            continue
    return None
