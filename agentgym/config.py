"""One typed configuration for runs, training and evaluation.

YAML in, command-line overrides on top (``--set trainer.lr=1e-5``), validated by pydantic before any work
starts. Every section forbids unknown keys, and the error names the key and the nearest valid one, so a
typo never becomes an option that silently does nothing.

Config files and ``--set`` values are untrusted text: YAML is read with a loader that refuses documents
over `MAX_CONFIG_BYTES` and alias graphs that expand beyond `MAX_YAML_NODES` nodes (a "billion laughs"
bomb is refused before anything is built from it), floats must be finite, and every failure (not UTF-8, a
directory, a YAML syntax error, an integer beyond the interpreter's digit limit, an empty file) is a
`ConfigError` of one line.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError

from agentgym.env import EnvLimits


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key."""


MAX_CONFIG_BYTES = 1 << 20
MAX_YAML_NODES = 100_000  # nodes after expanding every alias; real configs have a few hundred


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _integers_fit_64_bits(cls, value: Any) -> Any:
        # Counts, sizes and seeds reach torch, numpy and the OS as 64-bit integers: a larger one is a typo
        # or an attack, and would fail (or loop) long after start-up.
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            raise ValueError(f"{len(str(abs(value)))}-digit integer is out of the 64-bit range")
        return value


def _expanded_nodes(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes in the document once every alias is expanded, computed once per distinct node (linear)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    memo[id(node)] = MAX_YAML_NODES + 1  # an alias back into its own anchor counts as unbounded
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_nodes(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_nodes(k, memo) + _expanded_nodes(v, memo) for k, v in node.value)
    memo[id(node)] = min(total, MAX_YAML_NODES + 1)
    return memo[id(node)]


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a document whose aliases expand past `MAX_YAML_NODES` nodes."""

    def construct_document(self, node: yaml.Node) -> Any:
        if _expanded_nodes(node, {}) > MAX_YAML_NODES:
            raise ConfigError(f"the YAML expands to over {MAX_YAML_NODES:,} nodes through its aliases "
                              "(an alias bomb?); refused")
        return super().construct_document(node)


def _yaml_problem(e: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: what went wrong and where."""
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        mark = e.problem_mark
        return f"{e.problem or e.context}, line {mark.line + 1} column {mark.column + 1}"
    return " ".join(str(e).split())[:200]


def load_yaml(text: str, what: str) -> Any:
    """`text` parsed as one bounded YAML document; `ConfigError` naming `what` for anything else."""
    if len(text.encode("utf-8", "replace")) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{what} is over {MAX_CONFIG_BYTES:,} bytes; refused")
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} is not valid YAML ({_yaml_problem(e)})") from None
    except RecursionError:
        raise ConfigError(f"{what} is nested too deeply") from None
    except ValueError as e:  # e.g. an integer over the interpreter's digit limit
        raise ConfigError(f"{what}: {str(e)[:200]}") from None


class EnvConfig(Section):
    id: str = Field(default="agentgym/Calculator-v0", description="Registered env id.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Constructor arguments for the env.")
    limits: EnvLimits | None = Field(default=None, description="Overrides the env's own limits.")


class LoraConfig(Section):
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


class PolicyConfig(Section):
    model: str = Field(default="embedded", description="embedded | tiny | a local path | a hub id | a .gguf file | "
                       "hf-vision:<path or hub id> or tiny-vlm (an image-text-to-text model: images as pixels).")
    backend: Literal["hf"] = Field(default="hf", description="Training and evaluation run the model in process "
                                   "(Hugging Face); `agentgym run` takes other backends on its command line.")
    device: str | None = Field(default=None, description="cpu | cuda | None (auto).")
    max_batch_size: int = 32
    threads: int | None = Field(default=None, ge=0, description="torch threads for the in-process model. None: "
                                "$AGENTGYM_TORCH_THREADS, else the usable cores minus one (env workers and "
                                "sandboxes need a core); 0: leave torch's setting alone.")
    kv_cache_mb: float = Field(default=1024, ge=0, description="Memory for each path's keys/values kept across "
                               "turns, so a turn encodes only its new tokens (0: re-encode every turn).")
    lora: LoraConfig | None = None
    sampler: str = Field(default="hf", description="What rolls out for train/eval: hf (the trainer's own module) | "
                         "openai:<url> (an OpenAI-compatible server: agentgym serve, vllm serve) | vllm (in process). "
                         "The trainer always updates its own HF module and pushes weights to the sampler.")
    weight_sync: bool = Field(default=True, description="Push the trainer's weights to a separate sampler after "
                              "each update. false (openai:/vllm samplers only): the sampler keeps its weights and "
                              "training is off-policy, corrected by truncated importance sampling (trainer.tis_cap).")

    @field_validator("sampler")
    @classmethod
    def _known_sampler(cls, value: str) -> str:
        kind, _, url = value.partition(":")
        if value in ("hf", "vllm"):
            return value
        if kind == "openai" and url.strip().startswith(("http://", "https://")):
            return value
        raise ValueError("must be hf, vllm or openai:<http(s) URL of an OpenAI-compatible server>")

    @model_validator(mode="after")
    def _sync_needs_a_separate_sampler(self) -> "PolicyConfig":
        if not self.weight_sync and self.sampler == "hf":
            raise ValueError("policy.weight_sync=false only applies to a separate sampler (openai:<url> or vllm); the hf "
                             "sampler is the trainer's own module")
        return self


class RolloutConfig(Section):
    """How the rollout engine samples: the one rollout config, read from the YAML ``rollout`` section and
    passed to `agentgym.rollout.RolloutEngine` as is (an algorithm may adjust a copy, e.g. ARPO's M)."""

    group_size: int = Field(default=1, ge=1, description="Episodes started from scratch per task (ARPO's N).")
    max_trajectories: int | None = Field(default=None, ge=1, description="Leaves per task incl. branches "
                                         "(ARPO's M); default group_size. Only branching algorithms use it.")
    supplement: bool = Field(default=False, description="Start fresh episodes when every path ended before "
                             "max_trajectories (branching algorithms turn it on).")
    temperature: float = Field(default=1.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    step_timeout_s: float = Field(default=60.0, gt=0, description="Backstop for an env step; tools have their "
                                  "own, shorter timeouts.")
    env_timeout_s: float = Field(default=120.0, gt=0, description="Bound on the env factory, reset, fork, close "
                                 "and each call of a prefix replay.")
    max_batch_size: int = Field(default=64, ge=1)
    batch_wait_s: float = Field(default=0.005, ge=0, description="How long a generation batch waits for paths "
                                "still in env steps (longer suits slow model backends, e.g. CPU).")
    deterministic: bool = Field(default=False, description="Batch only when every live path waits, in a fixed "
                                "order, so seeded runs sample the same tokens (slower with slow envs).")
    max_workers: int = Field(default=64, ge=1, description="Threads for env steps when the engine owns its loop.")
    max_concurrent_tasks: int | None = Field(default=None, ge=1, description="Tasks (groups) in flight at once; None "
                                             "= all. Heavy envs need a bound: 40 MiniWoB++ episodes at once open 40 "
                                             "Chromium contexts, which on 2 cores miss the page timeout.")

    @model_validator(mode="after")
    def _m_at_least_n(self) -> "RolloutConfig":
        if self.max_trajectories is not None and self.max_trajectories < self.group_size:
            raise ValueError(f"max_trajectories ({self.max_trajectories}) must be >= group_size ({self.group_size})")
        return self


RolloutSection = RolloutConfig  # the name this section had before it became the engine's config too


class AlgorithmConfig(Section):
    """Base of every algorithm's config. Each algorithm declares its own subclass with
    ``name: Literal["<its name>"]`` (see `agentgym.algorithms`); the ``algorithm`` section is validated
    against the class of the algorithm it names, so a key of another algorithm is an error."""

    name: str = "grpo"


class DistributedConfig(Section):
    """Multi-process training under a launcher (`torchrun`, `accelerate launch`): the world size and ranks come
    from the launcher's environment; one process (without a launcher) ignores this section."""

    strategy: Literal["fsdp", "ddp"] = Field(default="fsdp", description="fsdp: parameters, gradients and "
                                             "optimizer state sharded across ranks (torch FSDP2); ddp: replicated.")
    world_size: int | None = Field(default=None, ge=1, description="Expected number of processes; the run refuses "
                                   "to start under a launcher with another count. None = whatever was launched.")
    timeout_s: float = Field(default=1800.0, gt=0, description="Bound on any one collective (a rank that died or "
                             "hangs fails the others after this long instead of blocking them forever).")


class TrainerConfig(Section):
    steps: int = Field(default=10, ge=0)
    tasks_per_step: int = Field(default=4, ge=1)
    lr: float = 1e-6
    weight_decay: float = 0.01
    warmup_steps: int = 0
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    clip_low: float = 0.2
    clip_high: float = 0.28
    dual_clip: float | None = 3.0
    loss_agg: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"] = "token-mean"
    kl_coef: float = 0.0
    norm_adv_by_std: bool = True
    dynamic_sampling: bool = False
    epochs_per_batch: int = Field(default=1, ge=1)
    micro_batch_tokens: int = Field(default=4096, ge=1)
    grad_clip: float = Field(default=1.0, gt=0, description="Max global gradient norm (RL and SFT).")
    tis_cap: float = Field(default=2.0, gt=0, description="Truncated importance sampling: the sampler->trainer "
                           "weight min(pi_trainer/pi_sampler, cap) on every trained token.")
    max_staleness: int = Field(default=0, ge=0, description="Asynchronous one-step-off-policy training: the rollouts "
                               "of step k+1 are generated while step k updates. 0 = synchronous; n >= 1 = samples up "
                               "to n policy versions older than the trainer are trained on (TIS-corrected), older "
                               "ones dropped and counted (stale_dropped).")
    checkpoint_every: int = Field(default=0, ge=0, description="0 = only at the end.")
    keep_checkpoints: int = Field(default=2, ge=1)
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)


class SFTConfig(Section):
    data: str | None = Field(default=None, description="Trajectory store(s) to learn from; None = scripted expert.")
    expert: str | None = Field(default=None, description="module:function of a scripted expert policy.")
    expert_tasks: int = 64
    min_reward: float = Field(default=1.0, description="Keep only trajectories with at least this reward.")
    epochs: int = 2
    lr: float = 5e-5
    batch_size: int = 8


class EvalConfig(Section):
    tasks: int = Field(default=32, ge=1)
    split: str = "test"
    temperature: float = Field(default=0.0, ge=0)
    seed_offset: int = 10_000
    samples: int = Field(default=1, ge=1, le=1024, description="Episodes per task; accuracy and reward are their "
                         "mean (avg@k). More than 1 needs temperature > 0 (greedy episodes would be identical).")

    @model_validator(mode="after")
    def _samples_need_sampling(self) -> "EvalConfig":
        if self.samples > 1 and self.temperature <= 0:
            raise ValueError(f"samples ({self.samples}) > 1 needs temperature > 0: greedy episodes of a task are identical")
        return self


class LoggingConfig(Section):
    tensorboard: bool = True
    wandb: bool = False
    progress: bool = Field(default=True, description="A progress bar over each step's rollout (and eval) tasks.")


class RayConfig(Section):
    """Rollouts on a Ray cluster (agentgym.ray_workers): each worker actor runs whole episodes with its own
    policy replica and writes its own store file; the trainer pushes weights to the replicas after each update."""

    address: str | None = Field(default=None, description="A running cluster ('auto', 'HOST:PORT', 'ray://...'); "
                                "None starts a local one.")
    workers: int = Field(default=2, ge=1, le=1024, description="Rollout worker actors; tasks are spread over them.")
    cpus_per_worker: float = Field(default=1.0, gt=0, description="Ray CPUs each worker reserves.")
    timeout_s: float = Field(default=600.0, gt=0, description="Bound on one worker's share of a step's rollouts.")
    max_retries: int = Field(default=2, ge=0, le=100, description="Times a dead worker's episodes are rescheduled "
                             "on a fresh worker before the step fails.")


class Config(Section):
    run_dir: Path = Path("runs/latest")
    seed: int = 0
    env: EnvConfig = Field(default_factory=EnvConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    algorithm: SerializeAsAny[AlgorithmConfig] = Field(default_factory=lambda: _validate_algorithm({}))
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    sft: SFTConfig | None = None
    eval: EvalConfig = Field(default_factory=EvalConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    ray: RayConfig | None = Field(default=None, description="Set to run rollouts on Ray workers (train --ray).")

    @model_validator(mode="after")
    def _staleness_needs_versions(self) -> "Config":
        if self.trainer.max_staleness and not self.policy.weight_sync:
            raise ValueError("trainer.max_staleness > 0 needs policy.weight_sync=true (without pushes the sampler's "
                             "version never advances, so staleness is not defined)")
        return self

    @field_validator("run_dir")
    @classmethod
    def _run_dir_is_a_directory(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} exists and is not a directory")
        return value

    @field_validator("algorithm", mode="wrap")
    @classmethod
    def _algorithm_by_name(cls, value: Any, handler: Any) -> AlgorithmConfig:
        if isinstance(value, AlgorithmConfig) and type(value) is not AlgorithmConfig:
            return value
        if isinstance(value, AlgorithmConfig):
            value = value.model_dump()
        return _validate_algorithm(value)


def _validate_algorithm(value: Any) -> AlgorithmConfig:
    """Validate an ``algorithm`` section against the config class of the algorithm it names (a discriminated
    union over the registered algorithms, resolved lazily so a broken plugin only matters when named)."""
    from agentgym.algorithms import AlgorithmError, algorithm_spec, key_owner

    if not isinstance(value, dict):
        raise PydanticCustomError("algorithm_section", "must be a mapping with a 'name', got {got}",
                                  {"got": type(value).__name__})
    name = value.get("name", AlgorithmConfig.model_fields["name"].default)
    try:
        model = algorithm_spec(str(name)).config
    except AlgorithmError as e:
        raise PydanticCustomError("algorithm_name", "{msg}", {"msg": str(e)}) from None
    for key in value:
        if key not in model.model_fields:
            owner = key_owner(str(key), exclude=str(name))
            if owner:
                raise PydanticCustomError("algorithm_key", "`{key}` belongs to algorithm '{owner}', not '{name}'",
                                          {"key": key, "owner": owner, "name": name})
            near = difflib.get_close_matches(str(key), list(model.model_fields), n=1)
            hint = f"did you mean `{near[0]}`? " if near else ""
            raise PydanticCustomError("algorithm_key", "unknown key `{key}` for algorithm '{name}'; {hint}(valid: "
                                      "{valid})", {"key": key, "name": name, "hint": hint,
                                                   "valid": ", ".join(model.model_fields)})
    return model.model_validate(value)


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that owns the field at `loc` (minus the last element)."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        nxt = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if nxt is None:
            return None
        model = nxt
    return model


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def explain(err: ValidationError, root: type[BaseModel] = Config) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        key = ".".join(str(x) for x in loc)
        if e["type"] == "extra_forbidden":
            owner = _model_at(root, loc)
            valid = list(owner.model_fields) if owner else []
            near = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f"; did you mean {'.'.join(str(x) for x in loc[:-1] + (near[0],))!r}?" if near else ""
            lines.append(f"unknown config key {key!r}{hint} (valid here: {', '.join(valid)})")
        elif e["type"] == "algorithm_name":
            lines.append(f"{key}.name: {e['msg']}")
        elif e["type"] == "algorithm_key":
            lines.append(f"{key}.{e['ctx']['key']}: {e['msg']}")
        elif e["type"].startswith("algorithm_"):  # our own messages name the key and the algorithm
            lines.append(f"{key}: {e['msg']}")
        else:
            lines.append(f"{key}: {e['msg']} (got {_short(e.get('input'))})")
    return "invalid configuration: " + "; ".join(lines)  # one line, however many errors


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, _, raw = text.partition("=")
    keys = key.strip().split(".")
    if not all(keys):
        raise ConfigError(f"override {text!r}: {key.strip()!r} is not a section.key path")
    return keys, load_yaml(raw, f"the value of override {key.strip()!r}")


def read_config_file(p: Path) -> dict[str, Any]:
    """The top-level mapping of a config file; `ConfigError` for a missing, special, oversized, non-UTF-8,
    empty or non-mapping file."""
    if p.is_dir():
        raise ConfigError(f"config {p} is a directory, not a YAML file")
    if not p.exists():
        raise ConfigError(f"config file {p} does not exist")
    if not p.is_file():  # a FIFO or a device (/dev/zero) would be read forever
        raise ConfigError(f"config {p} is not a regular file")
    try:
        size = p.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {p} is {size:,} bytes, over {MAX_CONFIG_BYTES:,}; refused")
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {p} is not UTF-8 text (byte {e.start})") from None
    loaded = load_yaml(text, f"config file {p}")
    if loaded is None:  # refuse rather than silently start a default run
        raise ConfigError(f"config file {p} is empty (or null); write at least the env and policy sections")
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {p} must contain a mapping at the top level, not a {type(loaded).__name__}")
    return loaded


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, **defaults: Any) -> Config:
    data: dict[str, Any] = dict(defaults)
    if path is not None:
        loaded = read_config_file(Path(path))
        data.update(loaded)
    for item in overrides or []:
        keys, value = parse_override(item)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {k} is not a section")
        node[keys[-1]] = value
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(explain(e)) from None
    except RecursionError:
        raise ConfigError("the configuration is nested too deeply") from None


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
