"""The `agentgym` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from agentgym.printable import printable

app = typer.Typer(help="Train tool-using LLM agents with RL: environments, rollouts, trajectories.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
envs_app = typer.Typer(help="Registered environments.", no_args_is_help=True)
app.add_typer(envs_app, name="envs")
console = Console()


def fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {escape(printable(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@envs_app.command("list")
def envs_list() -> None:
    """List registered env ids and their entry points."""
    import gymnasium

    from agentgym.registry import list_envs

    table = Table("id", "entry point", "kwargs")
    for env_id in list_envs():
        spec = gymnasium.registry[env_id]
        table.add_row(*(Text(printable(x)) for x in (env_id, spec.entry_point, spec.kwargs or "")))
    console.print(table)


@app.command("check-env")
def check_env_cmd(
    env_id: Annotated[Optional[str], typer.Argument(help="Env id, e.g. agentgym/Calculator-v0.")] = None,
    all_envs: Annotated[bool, typer.Option("--all", help="Check every registered env.")] = False,
) -> None:
    """Run Gymnasium's check_env and agentgym's conformance checks on one env or all of them."""
    from agentgym.check import check_env_id
    from agentgym.registry import UnknownEnvError, list_envs, spec

    if all_envs == (env_id is not None):
        fail("give an env id or --all (not both)")
    ids = list_envs() if all_envs else [env_id]
    failed = 0
    for i in ids:
        try:
            spec(i)
        except UnknownEnvError as e:
            fail(str(e))
        table = Table("check", "result", "detail", title=Text(printable(i)))
        for r in check_env_id(i):
            failed += not r.ok
            table.add_row(Text(printable(r.name)), "[green]pass[/]" if r.ok else "[red]FAIL[/]", Text(printable(r.detail)))
        console.print(table)
    if failed:
        fail(f"{failed} check(s) failed", code=1)
    console.print(f"[green]all checks passed for {len(ids)} env(s)[/]")


@app.command("run")
def run_cmd(
    env_id: Annotated[str, typer.Argument(help="Env id, e.g. agentgym/Calculator-v0.")],
    policy: Annotated[str, typer.Option(help="embedded | tiny | hf:<path-or-id> | openai:<url> | scripted:<mod:fn>")] = "embedded",
    episodes: Annotated[int, typer.Option(min=1, help="Tasks to run.")] = 8,
    out: Annotated[Path, typer.Option(help="Run directory; trajectories go to OUT/trajectories.jsonl.")] = Path("runs/run"),
    group_size: Annotated[int, typer.Option(min=1, help="Episodes per task.")] = 1,
    temperature: Annotated[float, typer.Option(min=0.0)] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the first task; task i uses seed+i.")] = 0,
    model: Annotated[Optional[str], typer.Option(help="Model name for openai: policies.")] = None,
    env_kwarg: Annotated[Optional[list[str]], typer.Option("--env-kwarg", help="key=value passed to the env.")] = None,
) -> None:
    """Roll out a policy on an env, store the trajectory trees, print a summary."""
    from agentgym.config import ConfigError, load_yaml
    from agentgym.policies import make_policy
    from agentgym.registry import EnvImportError, UnknownEnvError, check_env_kwargs, make, spec
    from agentgym.rollout import RolloutConfig, RolloutEngine, RolloutError
    from agentgym.store import TrajectoryStore

    try:
        spec(env_id)
    except UnknownEnvError as e:
        fail(str(e))
    kwargs = {}
    for item in env_kwarg or []:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--env-kwarg {item!r} must look like key=value")
        try:
            kwargs[key] = load_yaml(value, f"--env-kwarg {key}")
        except ConfigError as e:
            fail(str(e))
    try:
        check_env_kwargs(env_id, kwargs)
        if out.exists() and not out.is_dir():
            fail(f"--out {out} exists and is not a directory")
        make(env_id, **kwargs).close()  # fail on bad kwargs before loading a model
        pol = make_policy(policy, **({"model": model} if model else {}))
    except (EnvImportError, TypeError, ValueError, FileNotFoundError) as e:
        fail(str(e))
    store = TrajectoryStore(out / "trajectories.jsonl")
    engine = RolloutEngine(pol, lambda: make(env_id, **kwargs), env_id=env_id,
                           config=RolloutConfig(group_size=group_size, temperature=temperature),
                           progress=True, on_tree=store.append)
    try:
        trees = engine.run([seed + i for i in range(episodes)])
    except RolloutError as e:
        fail(str(e), code=1)
    finally:
        pol.close()
    console.print(summary_table(trees, engine.stats, title=f"{env_id} — {policy}"))
    console.print(Text(f"trajectories: {printable(store.path)}"))


def summary_table(trees: list, stats: dict, title: str = "") -> Table:
    from agentgym.stats import rollout_metrics

    m = rollout_metrics(trees)
    table = Table("metric", "value", title=Text(printable(title)))
    table.add_row("tasks / trajectories", f"{len(trees)} / {m['n_trajectories']:.0f}")
    table.add_row("mean reward", f"{m['reward']:.3f}")
    table.add_row("accuracy (reward > 0)", f"{m['accuracy']:.1%}")
    table.add_row("turns per trajectory", f"{m['turns']:.2f}")
    table.add_row("tool calls per trajectory", f"{m['tool_calls']:.2f}")
    table.add_row("tool/format errors", f"{m['errors']:.0f}")
    table.add_row("generated tokens/s", f"{stats.get('tokens_per_s', 0):.1f}")
    table.add_row("wall time", f"{stats.get('wall_s', 0):.1f} s")
    return table


@app.command("serve")
def serve_cmd(
    model: Annotated[str, typer.Argument(help="embedded | tiny | local path | hub id")] = "embedded",
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Serve a transformers model over an OpenAI-compatible /v1/completions API (token ids in and out)."""
    from agentgym.policies.server import serve

    serve(model, host=host, port=port)


@app.command("serve-env")
def serve_env_cmd(
    env_id: Annotated[str, typer.Argument(help="Env id to serve.")],
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8100,
    max_sessions: Annotated[int, typer.Option(min=1)] = 64,
) -> None:
    """Serve an env over HTTP (one session per episode); use it with agentgym.env_server.RemoteEnv."""
    import uvicorn

    from agentgym.env_server import create_env_app
    from agentgym.registry import UnknownEnvError

    try:
        env_app = create_env_app(env_id, max_sessions=max_sessions)
    except UnknownEnvError as e:
        fail(str(e))
    uvicorn.run(env_app, host=host, port=port, log_level="warning")


def _mount_subcommands() -> None:
    """Commands from other layers (trainers, sandboxes, the inspector) arrive through the ``agentgym.cli``
    entry-point group, so the core never imports upward. A provider that fails to load is an error."""
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group="agentgym.cli"), key=lambda e: e.name):
        ep.load()(app)


_mount_subcommands()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
