"""`agentgym view | replay | report`: inspect and replay stored trajectories.

The commands are plain functions so the main CLI can mount them at top level::

    from agentgym.cli_inspect import register
    register(app)            # adds `view`, `replay` and `report` to the main typer app

This module also has its own typer `app` (``python -m agentgym.cli_inspect``) for use on its own.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from agentgym.printable import printable

console = Console()
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {escape(printable(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(printable(message))}", highlight=False, soft_wrap=True)


def view(
    path: Annotated[Optional[Path], typer.Argument(
        help="Run directory (trajectories.jsonl, metrics.jsonl) or a store file.")] = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 picks a free one).")] = 0,
    open_browser: Annotated[bool, typer.Option("--open/--no-open", help="Open the page in a browser.")] = False,
    demo: Annotated[bool, typer.Option("--demo", help="View a synthetic demo run (no PATH needed).")] = False,
) -> None:
    """Browse trajectories in a local web viewer: filters, branch trees, entropy heatmaps, dashboard.

    Also shows tool calls, observations (text, memory, images) and diffs between sibling branches."""
    from agentgym.viewer.server import ViewerServer

    demo_dir = None
    if demo:
        from agentgym.viewer.synthetic import write_synthetic_run

        demo_dir = Path(tempfile.mkdtemp(prefix="agentgym-demo-"))
        path = write_synthetic_run(demo_dir, 300)
    if path is None:
        _fail("give a run directory or trajectory file (or --demo)")
    if not path.exists():
        _fail(f"{path}: no such file or directory")
    try:
        server = ViewerServer(path, port=port)
    except OSError as e:
        _fail(f"cannot listen on 127.0.0.1:{port}: {e}")
    index = server.viewer.index
    for message in index.messages + server.viewer.metrics.messages:
        _warn(message)
    not_a_store = any("not a trajectory store" in m for m in index.messages)
    if path.is_file() and not index.summaries and not_a_store:
        server.close()
        _fail(f"{path} is not an agentgym trajectory store (expected lines of <length>\\t<crc32>\\t<json>)")
    console.print(Text(f"{len(index.summaries):,} trees from {printable(path)} (read in {index.load_s:.2f} s)"))
    console.print(f"viewer: [bold]{server.url}[/]  (Ctrl-C to stop)")
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        if demo_dir is not None:
            shutil.rmtree(demo_dir, ignore_errors=True)


def _read_trees(path: Path) -> list:
    """Every readable tree of a store file (or of a run: RUN/trajectories.jsonl and the Ray workers'
    RUN/trajectories-wK.jsonl, merged); skipped records are warned about."""
    from agentgym.store import MergedStore, StoreWarning, TrajectoryFileError, TrajectoryStore

    if not path.exists():
        _fail(f"{path}: no such file or directory")
    store: TrajectoryStore | MergedStore
    if path.is_dir():
        merged = MergedStore.of_run(path)
        if not any(p.is_file() for p in merged.paths):
            _fail(f"{path} has no trajectories.jsonl; give the store file itself")
        store = MergedStore([p for p in merged.paths if p.is_file()])
        path = store.paths[0]
    else:
        store = TrajectoryStore(path)
    if not path.is_file():  # a FIFO or a device (/dev/zero) would be read forever
        _fail(f"{path} is not a regular file")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StoreWarning)
        try:
            trees = store.read_all()
        except TrajectoryFileError as e:
            _fail(str(e))
        except IsADirectoryError:
            _fail(f"{path} is a directory")
    for w in caught:
        _warn(str(w.message))
    if not trees:
        _fail(f"{path}: no readable trajectory trees" + (" (empty file)" if path.stat().st_size == 0 else ""), code=1)
    return trees


def _select(trees: list, tree: str | None) -> list:
    if tree is None:
        return trees
    if tree.startswith("#") and tree[1:].isdigit() and int(tree[1:]) < len(trees):
        return [trees[int(tree[1:])]]
    exact = [t for t in trees if t.id == tree]
    matches = exact or [t for t in trees if t.id.startswith(tree)]
    if len(matches) != 1:
        _fail(f"no tree with id {tree!r}" if not matches
              else f"{len(matches)} trees start with {tree!r}; give more of the id")
    return matches


def replay(
    file: Annotated[Path, typer.Argument(
        help="Trajectory store file (or a run directory with trajectories.jsonl).")],
    tree: Annotated[Optional[str], typer.Option(
        "--tree", help="Tree id (or unique prefix, or #N for the N-th tree).")] = None,
    rescore_: Annotated[bool, typer.Option(
        "--rescore", help="Score every leaf again (env replay, or --scorer).")] = False,
    scorer: Annotated[Optional[str], typer.Option(
        help="Reward function module:function(tree, leaf_id) -> float.")] = None,
    out: Annotated[Optional[Path], typer.Option(
        help="With --rescore: write re-scored trees to this new store.")] = None,
    reexecute_: Annotated[bool, typer.Option(
        "--reexecute", help="Replay every path in a fresh env and compare observations.")] = False,
    export_sft: Annotated[Optional[Path], typer.Option(
        "--export-sft", help="Directory for sft_messages.jsonl and sft_tokens.jsonl.")] = None,
    success_above: Annotated[float, typer.Option(
        help="--export-sft keeps trajectories with final reward above this.")] = 0.0,
    limit: Annotated[int, typer.Option(help="Trees to draw when no --tree is given.")] = 1,
    full: Annotated[bool, typer.Option("--full", help="Do not clip long texts.")] = False,
    env_kwarg: Annotated[Optional[list[str]], typer.Option(
        "--env-kwarg", help="key=value for the env (overrides the run's run.json env_kwargs).")] = None,
) -> None:
    """Show trajectory trees in the terminal; re-score, re-execute or export them to SFT data.

    Envs are made as the run made them: with the env kwargs recorded in the run's run.json, if any."""
    from agentgym import replay as rp
    from agentgym.viewer.terminal import tree_renderable, trees_table

    try:
        make_env = _env_factory(file, env_kwarg, needs_env=reexecute_ or (rescore_ and not scorer))
    except ValueError as e:
        _fail(str(e))
    trees = _read_trees(file)
    chosen = _select(trees, tree)
    acting = rescore_ or reexecute_ or export_sft is not None
    if not acting:
        if tree is None and len(trees) > 1:
            more = " (first 50)" if len(trees) > 50 else ""
            console.print(trees_table(trees[:50], title=f"{file}: {len(trees)} trees{more}"))
        for t in chosen[: max(1, limit) if tree is None else None]:
            console.print(tree_renderable(t, limit=None if full else 300))
        return
    failed = False
    if rescore_:
        try:
            fn = rp.load_scorer(scorer) if scorer else None
        except ValueError as e:
            _fail(str(e))
        scores = rp.rescore(chosen, fn, env_factory=make_env)
        table = Table("tree", "leaf", "stored", "re-scored", "", title=f"re-score ({scorer or 'env replay'})")
        for s in scores:
            mark = Text(f"error {printable(s.error)}", style="red") if s.error else Text("changed" if s.changed else "", style="yellow")
            table.add_row(Text(printable(s.tree_id[:16])), str(s.leaf_id), f"{s.stored:g}",
                          "–" if s.rescored is None else f"{s.rescored:g}", mark)
        console.print(table)
        changed, errors = sum(s.changed for s in scores), sum(1 for s in scores if s.error)
        console.print(f"{len(scores)} leaves: {changed} changed, {errors} could not be scored")
        failed |= errors > 0
        if out is not None:
            from agentgym.store import TrajectoryStore

            n = TrajectoryStore(out).append_many(rp.apply_scores(t, scores, scorer or "env") for t in chosen)
            console.print(f"wrote {n} re-scored trees to {out}")
    if reexecute_:
        for t in chosen:
            report = rp.reexecute(t, env_factory=make_env)
            for note in report.notes:
                _warn(f"tree {t.id}: {note}")
            for e in report.errors:
                err.print(f"[red]tree {escape(printable(t.id))}: {escape(printable(e))}[/]", highlight=False, soft_wrap=True)
            for d in report.divergences:
                err.print(f"[red]DIVERGED[/] {escape(printable(d.describe()))}", highlight=False, soft_wrap=True)
            if report.ok:
                console.print(f"[green]reproduced[/] tree {escape(printable(t.id))}: {report.paths} paths, "
                              f"{report.nodes_checked} nodes identical")
            failed |= not report.ok
    if export_sft is not None:
        result = rp.export_sft(chosen, export_sft, success_above=success_above, env_factory=make_env)
        console.print(f"exported {result.exported} trajectories (skipped {result.skipped} with reward "
                      f"<= {success_above:g}):\n  {result.messages_path}\n  {result.tokens_path}", highlight=False)
    if failed:
        raise typer.Exit(1)


def _env_factory(file: Path, overrides: list[str] | None, needs_env: bool = False):
    """``env_id -> env`` made with the run's recorded kwargs (run.json beside the store), then `overrides`.
    When the envs will really be stepped (`needs_env`), a run.json that is unreadable, names an env that is
    not registered here or kwargs the env rejects is a one-line error before any replay; a missing one, or
    one for another env id than a tree's, is a warning: the env is then made with its registered defaults."""
    from agentgym.registry import EnvImportError, EnvKwargsError, UnknownEnvError, check_env_kwargs, make
    from agentgym.runs import RUN_FILE, RunInfo, parse_env_kwargs

    extra = parse_env_kwargs(overrides)
    run_file = (file if file.is_dir() else file.parent) / RUN_FILE
    info = None
    if not file.exists():
        pass  # _read_trees names the missing path
    elif needs_env and not run_file.is_file():
        _warn(f"no {RUN_FILE} in {run_file.parent}: envs are made with their registered defaults"
              f"{' and --env-kwarg' if extra else ' (pass --env-kwarg key=value for the kwargs the run used)'}")
    elif needs_env:
        info = RunInfo.read(run_file)
        try:
            check_env_kwargs(info.env_id, {**info.env_kwargs, **extra})
        except (UnknownEnvError, EnvKwargsError, EnvImportError) as e:
            raise ValueError(f"{run_file}: {e.args[0] if e.args else e}") from None
    else:
        info = RunInfo.find(file)
    warned: set[str] = set()

    def make_env(env_id: str):
        recorded = info.env_kwargs if info is not None and info.env_id == env_id else {}
        if needs_env and info is not None and info.env_id != env_id and env_id not in warned:
            warned.add(env_id)
            _warn(f"{run_file} is for env {info.env_id!r}, not {env_id!r}: {env_id!r} is made without its kwargs")
        return make(env_id, **{**recorded, **extra})

    return make_env


def report(
    run: Annotated[Path, typer.Argument(help="Run directory (metrics.jsonl, trajectories.jsonl).")],
    out: Annotated[Optional[Path], typer.Option(help="Output directory (default RUN/report).")] = None,
) -> None:
    """Plot the training curves to PNG and write a markdown summary (report.md)."""
    from agentgym.report import write_report

    if not run.exists():
        _fail(f"{run}: no such run directory or file")
    try:
        result = write_report(run, out)
    except ImportError as e:
        _fail(f"agentgym report needs matplotlib ({e}): pip install matplotlib")
    for message in result.messages:
        _warn(message)
    console.print(f"report: {result.markdown}")
    for image in result.images:
        console.print(f"  {image}")


def register(app: typer.Typer) -> None:
    """Mount `view`, `replay` and `report` as top-level commands of `app`."""
    app.command("view")(view)
    app.command("replay")(replay)
    app.command("report")(report)


app = typer.Typer(help="Inspect and replay agentgym trajectories.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
register(app)

if __name__ == "__main__":
    app()
