"""The `agentgym` command line."""

from __future__ import annotations

import os
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


Namespace = Annotated[Optional[str], typer.Option(help="Only envs of this namespace (e.g. agentgym, mypkg).")]


def _env_ids(namespace: str | None) -> list[str]:
    from agentgym.registry import list_envs, namespaces

    ids = list_envs(namespace)
    if namespace is not None and not ids:
        fail(f"no envs in namespace {namespace!r}; namespaces: {', '.join(namespaces()) or '(none)'}")
    return ids


@envs_app.command("list")
def envs_list(namespace: Namespace = None) -> None:
    """List registered env ids (built-in and every installed plugin's) and their entry points."""
    import gymnasium

    from agentgym.registry import env_origin, plugin_errors

    table = Table()
    table.add_column("id", no_wrap=True)  # ids are what users copy: never cut
    table.add_column("entry point", overflow="fold")
    table.add_column("kwargs", overflow="fold")
    table.add_column("registered by")
    for env_id in _env_ids(namespace):
        spec = gymnasium.registry[env_id]
        table.add_row(*(Text(printable(x)) for x in (env_id, spec.entry_point, spec.kwargs or "", env_origin(env_id))))
    console.print(table)
    for problem in plugin_errors():  # its envs are missing from the table: say why
        console.print(f"[red]broken plugin:[/] {escape(printable(problem))}", highlight=False)


@app.command("check-env")
def check_env_cmd(
    env_id: Annotated[Optional[str], typer.Argument(help="Env id, e.g. agentgym/Calculator-v0.")] = None,
    all_envs: Annotated[bool, typer.Option("--all", help="Check every registered env (every namespace).")] = False,
    namespace: Namespace = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Show every warning a check raised.")] = False,
) -> None:
    """Run Gymnasium's check_env and agentgym's conformance checks on one env or all of them.

    The random and scripted agents run through the rollout engine, as `agentgym run` would."""
    from rich.markup import escape

    from agentgym.check import check_env_id
    from agentgym.registry import UnknownEnvError, plugin_errors, spec

    if all_envs == (env_id is not None):
        fail("give an env id or --all (not both)")
    ids = _env_ids(namespace) if all_envs else [env_id]
    failed = 0
    if all_envs:  # a plugin that failed to load has envs nobody can check: that is a failed check
        for problem in plugin_errors():
            failed += 1
            console.print(f"[red]FAIL[/] {problem}; fix the plugin (run `python -c \"import {problem.target.split(':')[0]}\"` "
                          "to see the traceback)", highlight=False)
    for i in ids:
        try:
            spec(i)
        except UnknownEnvError as e:
            fail(str(e))
        table = Table("check", "result", "detail", title=Text(printable(i)))
        results = check_env_id(i)
        for r in results:
            failed += not r.ok
            detail = escape(printable(r.detail)) + (f"\n[bold]fix:[/] {escape(printable(r.fix))}" if not r.ok and r.fix else "")
            table.add_row(Text(printable(r.name)), "[green]pass[/]" if r.ok else "[red]FAIL[/]", detail)
        console.print(table)
        for r in results if verbose else []:
            for w in r.warnings:
                console.print(f"[yellow]warning[/] ({escape(printable(r.name))}): {escape(printable(w))}", highlight=False)
    if failed:
        fail(f"{failed} check(s) failed", code=1)
    console.print(f"[green]all checks passed for {len(ids)} env(s)[/]")


@app.command("run")
def run_cmd(
    env_id: Annotated[str, typer.Argument(help="Env id, e.g. agentgym/Calculator-v0.")],
    policy: Annotated[str, typer.Option(help="embedded | tiny | hf:<path-or-id> | vllm:<model> | openai:<url> | scripted:<mod:fn>")] = "embedded",
    episodes: Annotated[int, typer.Option(min=1, help="Tasks to run.")] = 8,
    out: Annotated[Path, typer.Option(help="Run directory; trajectories go to OUT/trajectories.jsonl.")] = Path("runs/run"),
    group_size: Annotated[int, typer.Option(min=1, help="Episodes per task.")] = 1,
    temperature: Annotated[float, typer.Option(min=0.0)] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the first task; task i uses seed+i.")] = 0,
    model: Annotated[Optional[str], typer.Option(help="Model name for openai: policies (default: the server's first in /v1/models).")] = None,
    env_kwarg: Annotated[Optional[list[str]], typer.Option("--env-kwarg", help="key=value passed to the env.")] = None,
    tokenizer: Annotated[Optional[str], typer.Option(help="Tokenizer of an openai: policy's served model (path or hub id; default: the embedded one).")] = None,
    images: Annotated[Optional[str], typer.Option(help="Screenshots for a text-only hf:/openai: policy: 'text' renders each as a line of text (default: refused).")] = None,
    concurrency: Annotated[Optional[int], typer.Option(min=1, help="Tasks in flight at once (default: all); bound it for heavy envs such as a browser's.")] = None,
) -> None:
    """Roll out a policy on an env, store the trajectory trees, print a summary.

    Trees are appended to OUT/trajectories.jsonl as each task finishes, and OUT/run.json records how to
    reproduce the run. Exits 1 (printing the causes) if episodes failed to start or every path failed;
    Ctrl-C stops within seconds and keeps the trees that finished."""
    from agentgym.policies import make_policy
    from agentgym.policies.openai_compat import PolicyServerError
    from agentgym.registry import EnvImportError, EnvKwargsError, UnknownEnvError, check_env_kwargs, make
    from agentgym.rollout import RolloutConfig, RolloutEngine, RolloutError
    from agentgym.runs import RunInfo, all_failed, causes, parse_env_kwargs, start_failures, tokenizer_name, versions
    from agentgym.store import TrajectoryStore

    try:
        kwargs = parse_env_kwargs(env_kwarg)
        if out.exists() and not out.is_dir():
            fail(f"--out {out} exists and is not a directory")
        check_env_kwargs(env_id, kwargs)  # fail on a bad id or bad kwargs before loading a model
        pol = make_policy(policy, **({"model": model} if model else {}), **({"tokenizer": tokenizer} if tokenizer else {}),
                          **({"images": images} if images else {}))
    except (UnknownEnvError, EnvImportError, EnvKwargsError, TypeError, ValueError, FileNotFoundError,
            PolicyServerError) as e:
        fail(str(e))
    seeds = [seed + i for i in range(episodes)]
    RunInfo(env_id=env_id, env_kwargs=kwargs, policy=policy, tokenizer=tokenizer or tokenizer_name(policy), seeds=seeds,
            group_size=group_size, temperature=temperature, versions=versions(), command=sys.argv).write(out)
    store = TrajectoryStore(out / "trajectories.jsonl")
    finished: list = []

    def keep(tree) -> None:  # appended as each task finishes: a crash or Ctrl-C loses only live tasks
        store.append(tree)
        finished.append(tree)

    engine = RolloutEngine(pol, lambda: make(env_id, **kwargs), env_id=env_id,
                           config=RolloutConfig(group_size=group_size, temperature=temperature,
                                                max_concurrent_tasks=concurrency),
                           progress=True, on_tree=keep)
    try:
        trees = engine.run(seeds)
    except RolloutError as e:
        fail(str(e), code=1)
    except KeyboardInterrupt:
        pol.close()
        console.print(f"[yellow]interrupted:[/] kept {len(finished)} finished tree(s) in {store.path}")
        exit_interrupted()
    finally:
        pol.close()
    console.print(summary_table(trees, engine.stats, title=f"{env_id} — {policy}"))
    console.print(Text(f"trajectories: {printable(store.path)}"))
    not_started = start_failures(trees)
    if not_started or all_failed(trees):
        what = f"{len(not_started)} episode(s) failed to start" if not_started else "every path failed"
        fail(f"{what}: " + "; ".join(causes(trees)), code=1)


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
    from agentgym.runs import failure_counts

    counts = failure_counts(trees)
    table.add_row("failed paths", ", ".join(f"{stage} {kind}: {n}" for (stage, kind), n in sorted(counts.items()))
                  if counts else "0")
    table.add_row("generated tokens/s", f"{stats.get('tokens_per_s', 0):.1f}")
    table.add_row("wall time", f"{stats.get('wall_s', 0):.1f} s")
    return table


@app.command("serve")
def serve_cmd(
    model: Annotated[str, typer.Argument(help="embedded | tiny | tiny-vlm | hf-vision:<path> | local path | hub id")] = "embedded",
    host: Annotated[str, typer.Option(help="Beyond loopback only with --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    token: Annotated[Optional[str], typer.Option(envvar="AGENTGYM_SERVE_TOKEN", show_envvar=True,
                                                 help="Bearer token clients must send (OpenAI clients: api_key).")] = None,
    allow_host: Annotated[Optional[list[str]], typer.Option(help="Extra Host name to answer (e.g. a proxy's); '*' = any.")] = None,
    request_timeout: Annotated[float, typer.Option(min=0.1, help="Deadline per request in seconds (waiting included).")] = 300.0,
    max_model_len: Annotated[Optional[int], typer.Option(min=1, help="Context length (default: the model's).")] = None,
    max_body_mb: Annotated[float, typer.Option(min=0.001, help="Larger request bodies get 413.")] = 32.0,
) -> None:
    """Serve a transformers model over an OpenAI-compatible /v1/completions API (token ids in and out)."""
    from agentgym.http_guard import InsecureBindError
    from agentgym.policies.server import serve

    try:
        serve(model, host=host, port=port, token=token, allowed_hosts=tuple(allow_host or ()),
              max_body_bytes=int(max_body_mb * 2**20), request_timeout_s=request_timeout,
              max_model_len=max_model_len, announce=console.print)
    except InsecureBindError as e:
        fail(str(e))


@app.command("serve-env")
def serve_env_cmd(
    env_id: Annotated[str, typer.Argument(help="Env id to serve.")],
    host: Annotated[str, typer.Option(help="Beyond loopback only with --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8100,
    max_sessions: Annotated[int, typer.Option(min=1)] = 64,
    token: Annotated[Optional[str], typer.Option(envvar="AGENTGYM_ENV_TOKEN", show_envvar=True,
                                                 help="Bearer token clients must send (default: generated, printed).")] = None,
    allow_host: Annotated[Optional[list[str]], typer.Option(help="Extra Host name to answer (e.g. a proxy's); '*' = any.")] = None,
    idle_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds before an idle session is closed.")] = 600.0,
    max_lifetime: Annotated[float, typer.Option(min=0.1, help="Seconds after which a session is closed, used or not.")] = 3600.0,
    max_body_mb: Annotated[float, typer.Option(min=0.001, help="Larger request bodies get 413.")] = 8.0,
) -> None:
    """Serve an env over HTTP (one session per episode); use it with agentgym.env_server.RemoteEnv."""
    from agentgym.env_server import serve_env
    from agentgym.http_guard import InsecureBindError
    from agentgym.registry import UnknownEnvError

    try:
        serve_env(env_id, host=host, port=port, token=token, allowed_hosts=tuple(allow_host or ()),
                  max_sessions=max_sessions, idle_timeout_s=idle_timeout, max_lifetime_s=max_lifetime,
                  max_body_bytes=int(max_body_mb * 2**20), announce=console.print)
    except (UnknownEnvError, InsecureBindError) as e:
        fail(str(e))


def _mount_subcommands() -> None:
    """Commands from other layers (trainers, sandboxes, the inspector) arrive through the ``agentgym.cli``
    entry-point group, so the core never imports upward. A provider that fails to load is an error."""
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group="agentgym.cli"), key=lambda e: e.name):
        ep.load()(app)


_mount_subcommands()


def exit_interrupted() -> None:
    """Ctrl-C: what finished is already on disk (stores append and fsync per tree). Exit now rather than
    join worker threads still inside a model call or a hung env, which interpreter shutdown would wait for
    (click would also turn the interrupt into a plain exit 1)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        exit_interrupted()


if __name__ == "__main__":
    main()
