"""Data-parallel training across processes: one process per device, launched by `torchrun` or
`accelerate launch`, with torch FSDP2 (`fully_shard`: parameters, gradients and optimizer state sharded) or
DDP (replicated).

Who does what (one writer, one sampler):

- Rank 0 is the sampler and the only writer. It runs the rollouts, credit, advantages and sample building as
  a single process would, owns the trajectory store, the logs and the checkpoints, and holds a full copy of
  the weights for generation (under FSDP a separate unsharded copy, refreshed from the shards after every
  update; under DDP the replica itself).
- Every rank trains. Rank 0 splits each step's samples into shards of about equal token counts and scatters
  them; each rank runs the shared update (`PolicyTrainer.update`) on its shard, with the loss normalisers
  (trained tokens, sequences) summed over all ranks, so the summed gradient equals the one-process gradient
  of the whole batch. The other ranks just follow rank 0's commands (`serve`).

Why not `accelerate`'s own FSDP: `Accelerator` switches FSDP on only for GPU-type backends; several CPU
processes are `DistributedType.MULTI_CPU` (DDP over gloo). torch's FSDP2, which accelerate's FSDP v2 wraps,
runs on gloo too, so we call it directly and keep one code path for CPU and GPU; accelerate's `PartialState`
reads the launcher's environment, picks the backend (gloo on CPU, NCCL on CUDA) and the device, and
initialises the process group.

Control messages (samples, commands, metric sums) travel on a separate gloo group, so they never need a GPU.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from agentgym.config import Config
    from agentgym.trainers.samples import Sample


class Collective:
    """The data-parallel group as the update sees it; this base class is one process (every reduction is
    the identity)."""

    world_size = 1
    rank = 0
    is_main = True

    def sum(self, values: list[float]) -> list[float]:
        return list(values)

    def max(self, value: int) -> int:
        return value

    def sum_dict(self, sums: dict[str, float]) -> dict[str, float]:
        return sums

    def grad_sync(self, model: Any, last: bool) -> contextlib.AbstractContextManager:
        """Around one micro-batch's backward: reduce gradients across ranks only after the `last` one."""
        return contextlib.nullcontext()

    # ---- the training loop's side ----------------------------------------------------------------------
    def prepare_model(self, model: Any) -> Any:
        """The module the optimizer trains (sharded or replicated); `model` stays the sampler."""
        return model

    def coordinate(self, trainer: Any) -> Any:
        """Rank 0's trainer: the one the training loop calls (it drives the other ranks)."""
        return trainer

    def serve(self, trainer: Any) -> list:
        """A non-zero rank's life: follow rank 0's commands until it finishes."""
        return []

    def finish(self, trainer: Any) -> None:
        """Rank 0 after its last step: release the other ranks."""


SINGLE_PROCESS = Collective()


def launched_world_size() -> int:
    """The number of processes the launcher started (torchrun, accelerate launch and mpirun set these)."""
    for key in ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        if os.environ.get(key):
            return int(os.environ[key])
    return 1


def check_launch(cfg: Config) -> int:
    """Validate `trainer.distributed` against the launch, before any model is loaded; the world size."""
    from agentgym.config import ConfigError

    world = launched_world_size()
    d = cfg.trainer.distributed
    if d.world_size is not None and d.world_size != world:
        how = (f"launch it with `torchrun --nproc_per_node {d.world_size} -m agentgym.cli train ...`"
               if world == 1 else "set it to the launched count or remove it")
        raise ConfigError(f"trainer.distributed.world_size: {d.world_size} processes expected but {world} "
                          f"{'was' if world == 1 else 'were'} launched; {how}")
    if world > 1:
        episodes = cfg.trainer.tasks_per_step * cfg.rollout.group_size
        if episodes % world:
            raise ConfigError(f"trainer.tasks_per_step: {cfg.trainer.tasks_per_step} tasks x rollout.group_size "
                              f"{cfg.rollout.group_size} = {episodes} episodes per step do not divide among the "
                              f"{world} launched processes (WORLD_SIZE); make tasks_per_step x group_size a "
                              f"multiple of {world}")
    return world


def init_distributed(cfg: Config) -> Collective:
    """The group this process belongs to: `SINGLE_PROCESS` without a launcher, else a `ProcessGroup`."""
    if check_launch(cfg) == 1:
        return SINGLE_PROCESS
    from datetime import timedelta

    import torch
    from accelerate import PartialState

    cpu = cfg.policy.device == "cpu" or not torch.cuda.is_available()
    timeout = timedelta(seconds=cfg.trainer.distributed.timeout_s)
    state = PartialState(cpu=cpu, timeout=timeout, **({"backend": "gloo"} if cpu else {}))
    return ProcessGroup(state, cfg.trainer.distributed.strategy, timeout)


def shard_samples(samples: list[Sample], world: int) -> list[list[Sample]]:
    """`world` shards of about equal token counts (longest first, each to the lightest shard); within a
    shard the batch order is kept. Deterministic."""
    load = [0] * world
    owner: dict[int, int] = {}
    for i in sorted(range(len(samples)), key=lambda i: -len(samples[i].input_ids)):
        r = min(range(world), key=load.__getitem__)
        owner[i] = r
        load[r] += len(samples[i].input_ids)
    return [[s for i, s in enumerate(samples) if owner[i] == r] for r in range(world)]


class ProcessGroup(Collective):
    """This process's place among the launched ones: sums over ranks, sharding, rank 0's commands."""

    def __init__(self, state: Any, strategy: str, timeout: Any):
        import torch.distributed as dist

        self.state, self.strategy = state, strategy
        self.world_size, self.rank = state.num_processes, state.process_index
        self.is_main = self.rank == 0
        self.device = state.device
        self.control = dist.new_group(backend="gloo", timeout=timeout)
        self.sampler: Any = None  # rank 0, FSDP: the unsharded copy that generates

    # ---- reductions the update uses --------------------------------------------------------------------
    def sum(self, values: list[float]) -> list[float]:
        import torch
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, group=self.control)
        return t.tolist()

    def max(self, value: int) -> int:
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control)
        return int(t.item())

    def sum_dict(self, sums: dict[str, float]) -> dict[str, float]:
        import torch.distributed as dist

        every: list[dict[str, float] | None] = [None] * self.world_size
        dist.all_gather_object(every, sums, group=self.control)
        out: dict[str, float] = {}
        for part in every:
            for k, v in (part or {}).items():
                out[k] = out.get(k, 0.0) + v
        return out

    @contextlib.contextmanager
    def grad_sync(self, model: Any, last: bool) -> Iterator[None]:
        if self.strategy == "fsdp":
            model.set_requires_gradient_sync(last)  # accumulate locally, reduce-scatter once
            yield
        elif last:
            yield
        else:
            with model.no_sync():
                yield

    # ---- model -----------------------------------------------------------------------------------------
    def prepare_model(self, model: Any) -> Any:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        if self.strategy == "ddp":
            model.to(self.device)  # DDP broadcasts rank 0's parameters and buffers when it wraps
            ids = [self.device.index] if self.device.type == "cuda" else None
            return DistributedDataParallel(model, device_ids=ids)
        from torch.distributed.device_mesh import init_device_mesh

        try:
            from torch.distributed.fsdp import fully_shard
        except ImportError:  # FSDP2 became public API in torch 2.6
            from agentgym.config import ConfigError

            raise ConfigError("trainer.distributed.strategy: fsdp needs torch>=2.6 (torch.distributed.fsdp."
                              "fully_shard); upgrade torch or use strategy: ddp") from None

        train = copy.deepcopy(model) if self.is_main else model  # rank 0 keeps `model` whole, to sample
        train.to(self.device)
        for tensor in train.state_dict().values():  # every rank starts from rank 0's weights
            dist.broadcast(tensor, src=0)
        mesh = init_device_mesh(self.device.type, (self.world_size,))
        base = train.get_base_model() if hasattr(train, "get_base_model") else train
        blocks = set(getattr(base, "_no_split_modules", None) or [])  # the transformer layers
        for module in train.modules():
            if type(module).__name__ in blocks:
                fully_shard(module, mesh=mesh)
        fully_shard(train, mesh=mesh)
        self.sampler = model if self.is_main else None
        return train

    def sync_sampler(self, train: Any) -> None:
        """FSDP: gather the trained weights one parameter at a time (a collective) into rank 0's sampling copy,
        so rank 0 never holds a second full copy."""
        if self.strategy != "fsdp":
            return  # DDP: rank 0 samples with its replica, already up to date
        import torch

        target = dict(self.sampler.named_parameters()) if self.is_main else {}
        with torch.no_grad():
            for name, param in train.named_parameters():  # the same names: fully_shard renames nothing
                if not param.requires_grad:  # frozen (a LoRA run's base): unchanged since the last sync
                    continue
                full = param.full_tensor()
                if self.is_main:
                    target[name].copy_(full)

    def load_model_from_main(self, train: Any) -> None:
        """Resume: rank 0's sampler holds the checkpoint's weights; give them to every rank's module."""
        import torch.distributed as dist

        if self.strategy == "ddp":
            for tensor in train.module.state_dict().values():
                dist.broadcast(tensor, src=0)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        full = self.sampler.state_dict() if self.is_main else {}
        set_model_state_dict(train, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))

    # ---- rank 0 drives, the others follow --------------------------------------------------------------
    def command(self, kind: str, payloads: list[Any] | None = None) -> Any:
        """Rank 0: send `kind` with one payload per rank; every rank: receive (kind, its payload)."""
        import torch.distributed as dist

        out: list[Any] = [None]
        inputs = [(kind, p) for p in (payloads or [None] * self.world_size)] if self.is_main else None
        dist.scatter_object_list(out, inputs, src=0, group=self.control)
        return out[0]

    def coordinate(self, trainer: Any) -> Any:
        return Coordinator(trainer, self) if self.is_main else trainer

    def serve(self, trainer: Any) -> list:
        while True:
            kind, payload = self.command("")
            if kind == "update":
                step, shard = payload
                if trainer.update(shard, step=step).trained_tokens:  # the same totals on every rank
                    self.sync_sampler(trainer.model)
            elif kind == "state_dict":
                full_trainer_state(trainer)
            elif kind == "load_state_dict":
                self.load_model_from_main(trainer.model)
                trainer.load_state_dict(payload)
            elif kind == "stop":
                return []
            else:
                raise RuntimeError(f"rank {self.rank}: unknown command {kind!r} from rank 0")

    def finish(self, trainer: Any) -> None:
        self.command("stop")


def full_trainer_state(trainer: Any) -> dict[str, Any]:
    """The trainer's state with the optimizer state gathered whole on rank 0, keyed by parameter name (a
    collective: every rank calls it). Loadable at any world size."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    state = trainer.state_dict()
    state["optimizer"] = get_optimizer_state_dict(trainer.model, trainer.optimizer, options=StateDictOptions(
        full_state_dict=True, cpu_offload=True))
    return state


def load_optimizer_state(model: Any, optimizer: Any, saved: dict[str, Any], group: Collective) -> None:
    """Load a checkpoint's optimizer state: `optimizer.state_dict()` of one process (parameters by index)
    or the full by-name state of a multi-process run, into one process or a sharded group (from rank 0)."""
    by_index = any(isinstance(k, int) for k in saved.get("state", {})) or any(
        isinstance(p, int) for g in saved.get("param_groups", []) for p in g["params"])
    if group.world_size == 1 and by_index:
        optimizer.load_state_dict(saved)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    if by_index:  # the trainer builds its optimizer over the trainable parameters in module order
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        saved = {"state": {names[i]: v for i, v in saved["state"].items()},
                 "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in saved["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, saved if group.is_main else {}, options=StateDictOptions(
        full_state_dict=True, broadcast_from_rank0=group.world_size > 1))


class Coordinator:
    """Rank 0's face of the trainer: the training loop calls it exactly as it calls `PolicyTrainer`."""

    def __init__(self, trainer: Any, group: ProcessGroup):
        self.trainer, self.group = trainer, group

    def __getattr__(self, name: str) -> Any:  # model, optimizer, scheduler, cfg, ...
        return getattr(self.trainer, name)

    def update(self, samples: list[Sample], step: int = 0) -> Any:
        shards = shard_samples(samples, self.group.world_size)
        _, (_, mine) = self.group.command("update", [(step, shard) for shard in shards])
        stats = self.trainer.update(mine, step=step)
        if stats.trained_tokens:  # else no optimizer step: the sampler is current
            self.group.sync_sampler(self.trainer.model)
        return stats

    def state_dict(self) -> dict[str, Any]:
        self.group.command("state_dict")
        return full_trainer_state(self.trainer)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        small = {k: v for k, v in state.items() if k != "optimizer"}  # the optimizer goes by broadcast
        self.group.command("load_state_dict", [small] * self.group.world_size)
        self.group.load_model_from_main(self.trainer.model)
        self.trainer.load_state_dict(state)
