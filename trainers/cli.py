"""`agentgym train | eval | sft | demo`. Torch is imported inside the commands, so `agentgym --help` stays fast.

Every command validates its config (unknown keys, unknown algorithm, missing model path, unknown env,
incompatible checkpoint) and fails with exit code 2 and a clear message before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from agentgym.printable import printable

console = Console()
err = Console(stderr=True)

Overrides = Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key: section.key=value.")]


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(printable(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _load(config: Path | None, overrides: list[str] | None, **defaults):
    from agentgym.config import ConfigError, load_config

    try:
        return load_config(config, overrides, **defaults)
    except ConfigError as e:
        _fail(str(e))


def _user_errors() -> tuple[type[Exception], ...]:
    from agentgym.config import ConfigError
    from agentgym.policies.models import ModelNotFoundError
    from agentgym.registry import EnvImportError, UnknownEnvError
    from agentgym.trainers.checkpoint import CheckpointError
    from agentgym.ray_workers import RayRolloutError
    from agentgym.images import ImageError
    from agentgym.trainers.sft import DatasetError

    return (ConfigError, ModelNotFoundError, UnknownEnvError, EnvImportError, CheckpointError, DatasetError,
            RayRolloutError, ImageError)


def _one_process(command: str) -> None:
    """Only `train` is data-parallel; another command under a launcher would run (and write) once per rank."""
    from agentgym.trainers.distributed import launched_world_size

    if (world := launched_world_size()) > 1:
        _fail(f"`agentgym {command}` runs in one process, but {world} were launched (WORLD_SIZE); run it without "
              "torchrun / accelerate launch")


def train(config: Annotated[Path, typer.Argument(help="YAML config (see examples/).")],
          overrides: Overrides = None,
          resume: Annotated[bool, typer.Option(help="Continue from RUN_DIR/checkpoints/latest.")] = False,
          ray: Annotated[Optional[str], typer.Option(
              "--ray", metavar="ADDRESS", help="Run rollouts on Ray workers: 'local' starts a cluster on this "
              "machine; else a cluster address ('auto', HOST:PORT). Sets the config's ray.address.")] = None) -> None:
    """Train a policy on an env with the algorithm the config names (algorithm.name: grpo, arpo, igpo, eapo,
    cgrpo, ... or a plugin's); trajectories, metrics and checkpoints go to run_dir."""
    cfg = _load(config, overrides)
    if ray is not None:
        from agentgym.config import RayConfig

        address = None if ray == "local" else ray
        cfg.ray = RayConfig(address=address) if cfg.ray is None else cfg.ray.model_copy(update={"address": address})
    try:
        from agentgym.trainers.rl import RLRun

        run = RLRun(cfg, resume=resume)
        if run.group.is_main:  # under a launcher, rank 0 speaks for the run
            console.print(f"training {cfg.algorithm.name} on {cfg.env.id} from step {run.start_step} to {cfg.trainer.steps}")
        run.train()
    except _user_errors() as e:
        _fail(str(e))
    if run.group.is_main:
        console.print(f"done: {cfg.run_dir}")


def eval_cmd(config: Annotated[Path, typer.Argument(help="YAML config.")], overrides: Overrides = None,
             checkpoint: Annotated[Optional[Path], typer.Option(help="A checkpoint dir; default: the run's latest.")] = None,
             tag: Annotated[str, typer.Option(help="Name of the eval_<tag>.jsonl written to run_dir.")] = "eval") -> None:
    """Evaluate a policy (base model or a checkpoint) on held-out tasks."""
    _one_process("eval")
    cfg = _load(config, overrides)
    try:
        from agentgym.config import ConfigError
        from agentgym.trainers.checkpoint import CheckpointManager, model_fingerprint
        from agentgym.trainers.evaluate import comparison_table, evaluate
        from agentgym.trainers.weight_sync import open_sampler
        from agentgym.trainers.rl import load_weights
        from agentgym.trainers.session import open_session

        session = open_session(cfg)
        manager = CheckpointManager(cfg.run_dir)
        path = checkpoint or manager.latest()
        if path is not None:
            manager.check_compatible(Path(path), model_fingerprint(session.model, session.tokenizer))
            load_weights(session.model, Path(path) / "model")
            meta = manager.load_meta(Path(path))
            session.policy.version = int(meta.get("policy_version", meta.get("step", 0)))  # what a sampler is told
        if path is not None and cfg.policy.sampler != "hf" and not cfg.policy.weight_sync:
            raise ConfigError(f"eval of checkpoint {path} on policy.sampler={cfg.policy.sampler} needs "
                              "policy.weight_sync=true (the sampler would evaluate its own weights instead)")
        sampler = open_sampler(cfg, session.model, session.tokenizer, session.policy.version, training=False)
        try:
            _, metrics = evaluate(sampler or session.policy, session.env_factory(split=cfg.eval.split), cfg, tag,
                                  Path(cfg.run_dir))
        finally:
            if sampler is not None:
                sampler.close()
    except _user_errors() as e:
        _fail(str(e))
    console.print(comparison_table({str(path or cfg.policy.model): metrics}, title=f"{cfg.env.id} ({cfg.eval.split})"))


def sft(config: Annotated[Path, typer.Argument(help="YAML config with an sft section.")],
        overrides: Overrides = None) -> None:
    """Supervised fine-tuning on stored trajectories or scripted-expert rollouts (loss on actions only)."""
    _one_process("sft")
    cfg = _load(config, overrides)
    if cfg.sft is None:
        _fail("the config has no 'sft' section")
    try:
        from agentgym.trainers.checkpoint import CheckpointManager, model_fingerprint
        from agentgym.trainers.session import open_session
        from agentgym.trainers.sft import DatasetError, expert_trees, load_data, samples_from_trees, sft_train

        if cfg.sft.data:
            paths = [Path(p) for p in cfg.sft.data.split(",")]
            for p in paths:  # validate the data before loading a model
                if not p.is_file():
                    raise DatasetError(f"SFT data file {p} does not exist")
        session = open_session(cfg)
        if cfg.sft.data:
            samples = load_data(paths, cfg.sft.min_reward)
        else:
            if not cfg.sft.expert:
                raise DatasetError("sft needs sft.data (trajectory stores) or sft.expert (module:function)")
            trees = expert_trees(cfg.sft.expert, session.env_factory(split="train"), cfg.env.id, session.tokenizer,
                                 [1_000_000 + i for i in range(cfg.sft.expert_tasks)])
            samples = samples_from_trees(trees, cfg.sft.min_reward)
        from agentgym.trainers.vision import sft_vision

        vision = sft_vision(samples, session, paths if cfg.sft.data else [], cfg.run_dir)  # before any update
        losses = sft_train(session.model, session.tokenizer.pad_token_id, samples, cfg.sft, cfg.trainer, seed=cfg.seed,
                           log=lambda e, i, loss: console.print(f"epoch {e} batch {i} loss {loss:.4f}"),
                           vision=vision)
        manager = CheckpointManager(cfg.run_dir)
        path = manager.save(0, session.model, getattr(session.policy, "processor", None) or session.tokenizer, {}, {
            "fingerprint": model_fingerprint(session.model, session.tokenizer), "kind": "sft",
            "samples": len(samples), "final_loss": losses[-1] if losses else None})
    except _user_errors() as e:
        _fail(str(e))
    console.print(f"SFT done on {len(samples)} samples; weights in {path}")


def demo(config: Annotated[Optional[Path], typer.Option(help="Override the built-in demo config.")] = None,
         overrides: Overrides = None) -> None:
    """The main job: base eval -> SFT warm start -> ARPO -> eval, with a before/after table."""
    _one_process("demo")
    from agentgym.config import ConfigError
    from agentgym.trainers.demo import demo_config, run_demo
    from agentgym.trainers.session import validate

    try:
        cfg = demo_config(str(config) if config else None, overrides)
        validate(cfg)  # before the demo prints its banner: a bad config is one line
        run_demo(cfg)
    except ConfigError as e:
        _fail(str(e))
    except _user_errors() as e:
        _fail(str(e))


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("eval")(eval_cmd)
    app.command("sft")(sft)
    app.command("demo")(demo)
