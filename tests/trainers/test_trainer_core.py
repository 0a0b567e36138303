"""The trainer core's pieces: algorithm registry and per-algorithm config, the sampler/trainer split (TIS),
infra-error leaves, one segmentation (Parquet round trip, SFT on `replay --export-sft` output), and ARPO
branching on a plain text env."""

import copy
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import agentgym
from agentgym.config import ConfigError, TrainerConfig, load_config
from agentgym.env import EnvLimits, TextEnv
from agentgym.policies import ScriptedPolicy
from agentgym.policies.base import GenerationRequest, SamplingParams
from agentgym.rollout import RolloutConfig, RolloutEngine
from agentgym.trainers.advantages import TrajectoryZScore, TurnZScore, group_zscore
from agentgym.trainers.arpo import ARPOConfig, EntropyBranching
from agentgym.trainers.core import PolicyTrainer
from agentgym.trainers.credit import outcome_credit
from agentgym.trainers.pieces import AdvantageStats
from agentgym.trainers.samples import Sample, build_samples
from agentgym.trajectory import ToolCallRecord, TrajectoryTree, Turn, path_segments

ROOT = Path(__file__).resolve().parents[2]

# ---- registry and per-algorithm config ------------------------------------------------------------

PLUGIN = '''
"""A test algorithm added from outside the project: GRPO without std normalisation (Dr.GRPO's advantage)."""
from typing import Literal
from agentgym.config import AlgorithmConfig
from agentgym.trainers.advantages import TrajectoryZScore
from agentgym.trainers.algorithm import Algorithm, AlgorithmPlugin, flat_rollout
from agentgym.trainers.credit import outcome_credit
from agentgym.trainers.loss_terms import rl_terms
from agentgym.trainers.pieces import NoBranching
from agentgym.trainers.samples import build_samples


class MeanBaselineConfig(AlgorithmConfig):
    name: Literal["mean-baseline"] = "mean-baseline"
    scale: float = 1.0


def build(cfg, ctx):
    return Algorithm(name="mean-baseline", rollout=flat_rollout(cfg, "mean-baseline"),
                     make_strategy=lambda step: NoBranching(), credit=outcome_credit,
                     advantage=TrajectoryZScore(norm_by_std=False), build_samples=build_samples,
                     loss_terms=rl_terms(cfg.trainer))


PLUGIN = AlgorithmPlugin(name="mean-baseline", config=MeanBaselineConfig, build=build)
'''


def make_distribution(root: Path, name: str, entry_points: dict[str, str], module: str | None = None) -> Path:
    """A minimal installed distribution on a sys.path entry: a module and a dist-info with entry_points.txt."""
    root.mkdir(parents=True, exist_ok=True)
    if module is not None:
        (root / f"{name}.py").write_text(module)
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[agentgym.algorithms]\n{lines}\n")
    return root


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    root = make_distribution(tmp_path / "site", "meanbaseline_plugin", {"mean-baseline": "meanbaseline_plugin:PLUGIN"},
                             PLUGIN)
    make_distribution(root, "broken_plugin", {"broken-algo": "no_such_module_xyz:PLUGIN"})
    monkeypatch.syspath_prepend(str(root))
    return root


@pytest.mark.slow(ci=True)
def test_a_plugin_algorithm_from_an_entry_point_trains_two_steps(plugin_path, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(textwrap.dedent(f"""
        run_dir: {tmp_path / 'run'}
        env: {{id: agentgym/Calculator-v0, limits: {{max_turns: 1, max_tokens_per_turn: 8, max_tokens_per_episode: 8}}}}
        policy: {{model: tiny}}
        rollout: {{group_size: 2, temperature: 1.0}}
        algorithm: {{name: mean-baseline, scale: 2.0}}
        trainer: {{steps: 2, tasks_per_step: 2, lr: 1.0e-4}}
        logging: {{tensorboard: false, progress: false}}
        """))
    env = {"PYTHONPATH": str(plugin_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([str(Path(sys.executable).parent / "agentgym"), "train", str(cfg)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "training mean-baseline" in proc.stdout
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["algorithm"] == "mean-baseline"


def test_plugin_config_is_validated_by_its_own_class(plugin_path):
    cfg = load_config(algorithm={"name": "mean-baseline", "scale": 3.0})
    assert type(cfg.algorithm).__name__ == "MeanBaselineConfig" and cfg.algorithm.scale == 3.0
    with pytest.raises(ConfigError, match="`entropy_k` belongs to algorithm 'arpo', not 'mean-baseline'"):
        load_config(algorithm={"name": "mean-baseline", "entropy_k": 5})


def test_a_plugin_that_fails_to_import_is_named_and_breaks_nothing_else(plugin_path):
    with pytest.raises(ConfigError, match=r"algorithm plugin 'broken-algo' \(no_such_module_xyz:PLUGIN\) failed "
                                          r"to import: ModuleNotFoundError"):
        load_config(algorithm={"name": "broken-algo"})
    assert load_config(algorithm={"name": "arpo"}).algorithm.name == "arpo"  # other algorithms still work


def test_unknown_algorithm_names_the_registered_ones():
    with pytest.raises(ConfigError, match=r"algorithm.name: unknown algorithm 'ppo-magic'; registered: .*arpo.*grpo"):
        load_config(algorithm={"name": "ppo-magic"})
    with pytest.raises(ConfigError, match="did you mean 'arpo'"):
        load_config(algorithm={"name": "arp"})


def test_a_key_of_another_algorithm_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="algorithm.entropy_k: `entropy_k` belongs to algorithm 'arpo', not 'grpo'"):
        load_config(algorithm={"name": "grpo", "entropy_k": 20})
    with pytest.raises(ConfigError, match="unknown key `entropy_kk` for algorithm 'arpo'; did you mean `entropy_k`"):
        load_config(algorithm={"name": "arpo", "entropy_kk": 20})
    with pytest.raises(ConfigError, match="rollout.max_trajectories=8 does nothing under algorithm 'grpo'"):
        from agentgym.trainers.grpo import build
        from agentgym.trainers.algorithm import BuildContext

        build(load_config(rollout={"group_size": 4, "max_trajectories": 8}), BuildContext())


@pytest.mark.parametrize("cap", [0, -1.5])
def test_a_tis_cap_that_is_not_positive_is_refused(cap):
    with pytest.raises(ConfigError, match=r"trainer.tis_cap: Input should be greater than 0"):
        load_config(trainer={"tis_cap": cap})


def test_config_round_trips_with_the_algorithm_fields(tmp_path):
    from agentgym.config import dump_config

    cfg = load_config(algorithm={"name": "arpo", "entropy_k": 7, "branch_after": "observation"})
    again = load_config(**__import__("yaml").safe_load(dump_config(cfg)))
    assert again.algorithm == cfg.algorithm and isinstance(again.algorithm, ARPOConfig)


# ---- sampler / trainer split --------------------------------------------------------------------------

def sampled_batch(model, tokenizer, temperature=1.0):
    """Two real generations of the in-process HF sampler, as samples with the sampler's log-probs."""
    from agentgym.policies.hf import HFPolicy

    torch.manual_seed(0)
    policy = HFPolicy(model, tokenizer)
    prompts = [tokenizer.encode(t, add_special_tokens=False) for t in ("What is 2+3?", "Name a colour, please")]
    gens = policy.generate([GenerationRequest(p, SamplingParams(max_new_tokens=6, temperature=temperature))
                            for p in prompts])
    samples = []
    for i, (p, g) in enumerate(zip(prompts, gens)):
        n = len(g.token_ids)
        samples.append(Sample(p + list(g.token_ids), [0] * len(p) + [1] * n, [0.0] * len(p) + [1.0 - 0.5 * i] * n,
                              [0.0] * len(p) + list(g.logprobs), "t", i, 0))
    return samples


def first_loss(model, tokenizer, samples, **cfg):
    trainer = PolicyTrainer(copy.deepcopy(model), tokenizer.pad_token_id, TrainerConfig(lr=0.0, **cfg))
    return trainer.update(samples).metrics()


def test_the_trainers_own_sampler_gives_todays_loss(tiny_model, tokenizer):
    samples = sampled_batch(tiny_model, tokenizer)
    stored = first_loss(tiny_model, tokenizer, samples)
    # today's behaviour: old log-probs = the trainer's own detached forward, no importance weight
    from agentgym.trainers.logprobs import pad_batch, token_logprobs

    mb = pad_batch(samples, tokenizer.pad_token_id)
    with torch.no_grad():
        own, _ = token_logprobs(tiny_model, mb["input_ids"], mb["attention_mask"], mb["loss_mask"])
    on_policy = [copy.copy(s) for s in samples]
    for row, s in enumerate(on_policy):
        s.sampling_logprobs = (own[row, : len(s.input_ids)] * mb["loss_mask"][row, : len(s.input_ids)]).tolist()
    today = first_loss(tiny_model, tokenizer, on_policy)
    assert today["tis_weight"] == 1.0 and today["mismatch_abs_logp"] == 0.0
    assert stored["loss"] == pytest.approx(today["loss"], rel=1e-5, abs=1e-7)
    assert stored["mismatch_abs_logp"] < 1e-4 and stored["tis_capped_frac"] == 0.0


@pytest.mark.parametrize("shift, expected_weight", [(-1.0, 2.0), (0.3, 0.7408)])
def test_a_perturbed_sampler_is_corrected_by_the_truncated_importance_weight(tiny_model, tokenizer, shift,
                                                                          expected_weight):
    samples = sampled_batch(tiny_model, tokenizer)
    base = first_loss(tiny_model, tokenizer, samples, tis_cap=2.0)
    perturbed = [copy.copy(s) for s in samples]
    for s in perturbed:  # a different sampler: its log-probs are off by `shift` on every sampled token
        s.sampling_logprobs = [lp + shift * m for lp, m in zip(s.sampling_logprobs, s.loss_mask)]
    m = first_loss(tiny_model, tokenizer, perturbed, tis_cap=2.0)
    # pi_trainer / pi_sampler = exp(-shift): e (capped at 2) or 0.74 (kept); the update is scaled by it
    assert m["tis_weight"] == pytest.approx(expected_weight, rel=1e-3)
    assert m["tis_capped_frac"] == (1.0 if shift < 0 else 0.0)
    assert m["loss"] == pytest.approx(base["loss"] * expected_weight, rel=1e-3)
    assert m["mismatch_abs_logp"] == pytest.approx(abs(shift), rel=1e-3)
    assert m["mismatch_kl"] == pytest.approx(torch.tensor(-shift).exp().item() - 1 + shift, rel=1e-2)


def test_the_mismatch_metric_appears_in_a_runs_metrics(tmp_path):
    from agentgym.trainers.rl import RLRun

    agentgym.register("agentgym/TestLetterE-v0", "toy_envs:LetterE")
    cfg = load_config(run_dir=str(tmp_path / "run"), env={"id": "agentgym/TestLetterE-v0"}, policy={"model": "tiny"},
                      rollout={"group_size": 4}, trainer={"steps": 1, "tasks_per_step": 2, "lr": 1e-3},
                      logging={"tensorboard": False, "progress": False})
    RLRun(cfg, quiet=True).train()
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert {"mismatch_abs_logp", "mismatch_kl", "tis_weight", "infra_error_leaves"} <= set(record)
    assert record["mismatch_abs_logp"] < 1e-3  # the in-process sampler is the trainer's own module


# ---- infra errors ---------------------------------------------------------------------------------

def tree_with_an_infra_error_leaf() -> TrajectoryTree:
    t = TrajectoryTree()
    for r in range(3):
        node = t.add(Turn(id=0, prefix_ids=[10 + r], action_ids=[20, 21], logprobs=[-0.1, -0.2]))
        t.final_rewards[node.id] = float(r == 1)
    t.nodes[2].tool_calls.append(ToolCallRecord(name="python", error_type="infra_error", error="sandbox died"))
    return t


def test_an_infra_error_leaf_gets_no_advantage_and_no_training_tokens():
    tree = tree_with_an_infra_error_leaf()
    outcome_credit([tree], None)
    stats = AdvantageStats()
    advantages = TrajectoryZScore()([tree], stats)
    assert stats.infra_error_leaves == 1 and set(advantages[0]) == {0, 1}
    assert advantages[0][0][0] == pytest.approx(group_zscore([0.0, 1.0])[0])  # z-score over the other two only
    assert tree.nodes[2].advantage is None
    samples = build_samples([tree], advantages)
    assert sorted(s.leaf for s in samples) == [0, 1]
    for estimator in (TurnZScore(), TurnZScore("separate", discount=1.0)):
        stats = AdvantageStats()
        assert 2 not in estimator([tree], stats)[0] and stats.infra_error_leaves == 1


# ---- turn-level advantages (the protocol later algorithms use) ---------------------------------------

def test_turn_zscore_separate_normalisation_and_discounted_returns():
    t = TrajectoryTree()  # two 2-turn trajectories: intermediate credit 0.2 / 0.6, outcome 1 / 0
    for first, last in ((0.2, 1.0), (0.6, 0.0)):
        a = t.add(Turn(id=0, action_ids=[1], logprobs=[0.0], credit_reward=first))
        t.add(Turn(id=0, parent=a.id, action_ids=[2], logprobs=[0.0], credit_reward=last))
    adv = TurnZScore("separate", discount=0.5)([t], AdvantageStats())[0]
    z_mid, z_out = group_zscore([0.2, 0.6]), group_zscore([1.0, 0.0])
    assert adv[1] == pytest.approx({0: z_mid[0] + 0.5 * z_out[0], 1: z_out[0]})
    assert adv[3] == pytest.approx({2: z_mid[1] + 0.5 * z_out[1], 3: z_out[1]})
    rounds = TurnZScore("joint")([t], AdvantageStats())[0]  # over rounds: each turn keeps its own z-score
    z = group_zscore([0.2, 1.0, 0.6, 0.0])
    assert rounds[1] == pytest.approx({0: z[0], 1: z[1]}) and t.nodes[0].advantage == pytest.approx(z[0])


# ---- one segmentation --------------------------------------------------------------------------------

def multi_segment_tree() -> TrajectoryTree:
    """root 0 -> 1 (rebuilds its context) -> {2, 3}: each path has two segments; 2 and 3 share node 1."""
    t = TrajectoryTree(id="multi")
    t.add(Turn(id=0, rebuild_context=True, prefix_ids=[1, 2], action_ids=[3, 4], logprobs=[-0.1, -0.2]))
    t.add(Turn(id=0, parent=0, rebuild_context=True, prefix_ids=[5, 6, 7], action_ids=[8], logprobs=[-0.3]))
    t.add(Turn(id=0, parent=1, prefix_ids=[9], action_ids=[10, 11], logprobs=[-0.4, -0.5]))
    t.add(Turn(id=0, parent=1, prefix_ids=[9], action_ids=[12], logprobs=[-0.6], branch_entropy=0.3,
               branched_from=2))
    t.final_rewards = {2: 1.0, 3: 0.0}
    return t


def test_a_multi_segment_tree_round_trips_through_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from agentgym.export import segments_from_rows, to_parquet

    tree = multi_segment_tree()
    rows = pq.read_table(to_parquet([tree], tmp_path / "t.parquet")).to_pylist()
    assert len(rows) == 4 and {r["num_segments"] for r in rows} == {2}
    back = segments_from_rows(rows)
    for leaf in (2, 3):
        expected = [{"input_ids": s.input_ids, "loss_mask": s.loss_mask, "sampling_logprobs": s.logprobs}
                    for s in path_segments(tree, leaf)]
        assert back[("multi", leaf)] == expected  # float64 in Parquet: exact
    assert back[("multi", 3)][1]["input_ids"] == [5, 6, 7, 8, 9, 12]


def test_samples_use_the_same_segments():
    tree = multi_segment_tree()
    outcome_credit([tree], None)
    samples = build_samples([tree], TrajectoryZScore()([tree], AdvantageStats()))
    by_leaf = {}
    for s in samples:
        by_leaf.setdefault(s.leaf, []).append((s.input_ids, s.loss_mask, s.sampling_logprobs))
    for leaf, got in by_leaf.items():
        assert got == [(x.input_ids, x.loss_mask, x.logprobs) for x in path_segments(tree, leaf)]
    last = [s for s in samples if s.leaf == 3][-1]  # turn ids let loss terms average per turn (e.g. EPO)
    assert last.turn_ids == [-1, -1, -1, 1, -1, 3] and last.advantages[3] == last.advantages[5] != 0


def test_sft_trains_on_replay_export_sft_output(tmp_path, tokenizer):
    from typer.testing import CliRunner

    from agentgym.cli import app
    from agentgym.envs.calculator.expert import calculator_expert
    from agentgym.store import TrajectoryStore

    engine = RolloutEngine(ScriptedPolicy(calculator_expert, tokenizer), lambda: agentgym.make("agentgym/Calculator-v0"),
                           env_id="agentgym/Calculator-v0", config=RolloutConfig(group_size=1))
    TrajectoryStore(tmp_path / "expert.jsonl").append_many(engine.run(range(3)))
    runner = CliRunner()
    out = runner.invoke(app, ["replay", str(tmp_path / "expert.jsonl"), "--export-sft", str(tmp_path / "sft")])
    assert out.exit_code == 0, out.output
    tokens = tmp_path / "sft" / "sft_tokens.jsonl"
    assert tokens.is_file() and "segments" in json.loads(tokens.read_text().splitlines()[0])
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(textwrap.dedent(f"""
        run_dir: {tmp_path / 'run'}
        env: {{id: agentgym/Calculator-v0}}
        policy: {{model: tiny}}
        trainer: {{grad_clip: 0.5}}
        sft: {{data: {tokens}, epochs: 1, batch_size: 2, lr: 1.0e-3}}
        logging: {{tensorboard: false}}
        """))
    out = runner.invoke(app, ["sft", str(cfg)])
    assert out.exit_code == 0, out.output
    assert "SFT done on 3 samples" in out.output
    meta = json.loads(next((tmp_path / "run" / "checkpoints").glob("*/meta.json")).read_text())
    assert meta["samples"] == 3 and meta["final_loss"] > 0


def test_sft_clips_gradients_with_the_trainer_setting(tiny_model, tokenizer):
    from agentgym.config import SFTConfig
    from agentgym.trainers.sft import sft_train

    model = copy.deepcopy(tiny_model)
    samples = [Sample([1, 2, 3, 4], [0, 1, 1, 1], [1.0] * 4, [0.0] * 4, "t", 0, 0)]
    norms = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *a, **k):
        norms.append(max_norm)
        return original(params, max_norm, *a, **k)

    torch.nn.utils.clip_grad_norm_, saved = spy, original
    try:
        sft_train(model, tokenizer.pad_token_id, samples, SFTConfig(epochs=1, batch_size=1, lr=1e-3),
                  TrainerConfig(grad_clip=0.25))
    finally:
        torch.nn.utils.clip_grad_norm_ = saved
    assert norms == [0.25]


# ---- ARPO branches on any env ---------------------------------------------------------------------

class Corridor(TextEnv):
    """A plain text game (no tools): walk north three times."""

    def __init__(self, limits=None):
        super().__init__(limits=limits or EnvLimits(max_turns=4))

    def _reset(self, options):
        self.pos = 0
        return "You are in a corridor. Exits: north.", {}

    def _step(self, action):
        self.pos += "north" in action
        done = self.pos >= 3
        return ("You reach the exit." if done else f"Room {self.pos}. Exits: north."), float(done), done, {}


@pytest.mark.parametrize("branch_after, branches", [("auto", 2), ("observation", 2), ("tool", 0)])
def test_arpo_branches_after_observations_on_a_plain_text_env(tokenizer, branch_after, branches):
    import math

    ln_v = math.log(len(tokenizer))

    def entropy(context, action):  # entropy rises after the first observation
        return (0.8 if "Room" in context else 0.3) * ln_v

    strategy = EntropyBranching(ARPOConfig(branch_after=branch_after), len(tokenizer))
    engine = RolloutEngine(ScriptedPolicy(lambda ctx: "go north", tokenizer, entropy_fn=entropy), Corridor,
                           env_id="corridor", config=RolloutConfig(group_size=2, max_trajectories=4, supplement=True),
                           strategy=strategy)
    (tree,) = engine.run([1])
    marked = [n for n in tree.nodes if n.branch_entropy is not None]
    assert len(marked) == branches and len(tree.leaves()) == 4
    assert all(n.branch_entropy == pytest.approx(0.5) for n in marked)
    assert all(tree.leaf_reward(leaf) == 1.0 for leaf in tree.leaves())


def test_the_viewer_shows_the_same_segments():
    from agentgym.viewer.tokens import TokenizerChoice
    from agentgym.viewer.treeview import tree_json

    tree = multi_segment_tree()
    shown = tree_json(tree, TokenizerChoice(None, None, "test"))["segments"]
    assert shown == {str(leaf): [{"nodes": [t[0] for t in s.turns], "tokens": len(s.input_ids),
                                  "trained_tokens": sum(s.loss_mask)} for s in path_segments(tree, leaf)]
                     for leaf in (2, 3)}
    assert shown["3"][1]["nodes"] == [1, 3]
