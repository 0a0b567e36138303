"""IGPO (trainers/igpo.py, trainers/info_gain.py): information-gain credit on hand-built trees with hand-computed
values (a deterministic scorer and the tiny model's real one), batched == per-turn scoring, the config,
a question without a gold answer, and 2 training steps on WebSearch-v0."""

from __future__ import annotations

import math
from importlib.metadata import entry_points

import pytest

import agentgym
from agentgym.algorithms import algorithm_spec
from agentgym.config import ConfigError, load_config
from agentgym.trainers.info_gain import MissingGoldAnswer, batched_values, naive_information_gain
from agentgym.trainers.pieces import AdvantageStats, CreditContext
from agentgym.trajectory import TrajectoryTree, Turn

agentgym.register("agentgym/TestLetterE-v0", "toy_envs:LetterE")
agentgym.register("agentgym/TestSometimesUnanswered-v0", "toy_envs:SometimesUnanswered")
MARK = 42  # the fake scorer's "evidence" token: each one in the context raises the answer's log-prob by 0.5
TASK = {"question": "Who?", "golden_answers": ["Ada Lovelace", "Lovelace"]}


class CountingScorer:
    """Deterministic stand-in for the policy's scorer: every gold token gets log-prob -2 + 0.5 * (number of
    MARK tokens in the context). Counts the pairs it is asked to score."""

    def __init__(self):
        self.pairs = 0
        self.calls = 0

    def __call__(self, contexts, targets):
        self.calls += 1
        self.pairs += len(contexts)
        return [[-2.0 + 0.5 * c.count(MARK)] * len(t) for c, t in zip(contexts, targets)]


def add_path(tree, turns, reward, answered=True, parent=None):
    """turns: the prefix ids of each turn (each action is [7, 8]); the last one is the leaf."""
    for prefix in turns:
        parent = tree.add(Turn(id=0, parent=parent, prefix_ids=prefix, action_ids=[7, 8], logprobs=[-1.0, -1.0])).id
    tree.nodes[parent].terminated, tree.nodes[parent].truncated = answered, not answered
    tree.final_rewards[parent] = reward
    return parent


def credit_and_advantages(trees, scorer, tokenizer, **algorithm):
    algorithm = {"name": "igpo", **algorithm}
    cfg = load_config(algorithm=algorithm)
    alg = algorithm_spec("igpo").build(cfg, None)
    alg.credit(trees, CreditContext(config=cfg, step=0, tokenizer=tokenizer, scorer=scorer))
    return alg.advantage(trees, AdvantageStats())


def zscore(xs):  # population std, the reference code's
    m = sum(xs) / len(xs)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))
    return [(x - m) / (s + 1e-6) for x in xs]


def test_igpo_is_registered_and_its_config_is_checked():
    assert "igpo" in {ep.name for ep in entry_points(group="agentgym.algorithms")}
    assert load_config(algorithm={"name": "igpo"}).algorithm.gamma == 1.0
    for bad, key in [({"gamma": 1.5}, "algorithm.gamma"), ({"gain": "kl"}, "algorithm.gain"),
                     ({"normalize": "both"}, "algorithm.normalize"), ({"format_penalty": 1}, "algorithm.format_penalty")]:
        with pytest.raises(ConfigError, match=key):
            load_config(algorithm={"name": "igpo", **bad})


def test_flat_group_matches_hand_computed_credit_and_advantages(tokenizer):
    tree = TrajectoryTree(task=TASK)
    r, c1, a_leaf = 0, 1, add_path(tree, [[1, 1], [MARK], [MARK, MARK]], 1.0)  # gains 0.5 then 1.0
    r_b = tree.nodes[add_path(tree, [[1, 1], [3]], 0.0)].parent  # gain 0
    c_leaf = add_path(tree, [[1, 1]], 5.0, answered=False)  # single turn, never answered: format penalty
    adv = credit_and_advantages([tree], CountingScorer(), tokenizer)[0]
    credit = {n.id: n.credit_reward for n in tree.nodes}
    assert credit[r] == pytest.approx(0.5) and credit[c1] == pytest.approx(1.0) and credit[r_b] == pytest.approx(0.0)
    assert credit[a_leaf] == 1.0 and credit[c_leaf] == -2.0
    ig, out = zscore([0.5, 1.0, 0.0]), zscore([1.0, 0.0, -2.0])
    assert adv[a_leaf] == pytest.approx({r: ig[0] + ig[1] + out[0], c1: ig[1] + out[0], a_leaf: out[0]})
    assert adv[c_leaf] == pytest.approx({c_leaf: out[2]})
    assert adv[tree.leaves()[1]][r_b] == pytest.approx(ig[2] + out[1])
    # gamma and the probability form
    tree2 = TrajectoryTree(task=TASK)
    leaf = add_path(tree2, [[1], [MARK], [MARK, MARK]], 1.0)
    other = add_path(tree2, [[1], [1]], 0.0)
    adv = credit_and_advantages([tree2], CountingScorer(), tokenizer, gamma=0.5, gain="prob_diff")[0]
    p = [math.exp(-2.0), math.exp(-1.5), math.exp(-0.5)]
    assert tree2.nodes[0].credit_reward == pytest.approx(p[1] - p[0])
    ig, out = zscore([p[1] - p[0], p[2] - p[1], 0.0]), zscore([1.0, 0.0])
    assert adv[leaf][0] == pytest.approx(ig[0] + 0.5 * ig[1] + 0.25 * out[0])
    assert adv[other][3] == pytest.approx(ig[2] + 0.5 * out[1])


def test_single_turn_and_all_equal_groups(tokenizer):
    single = TrajectoryTree(task=TASK)
    leaves = [add_path(single, [[1]], r) for r in (1.0, 0.0)]
    scorer = CountingScorer()
    adv = credit_and_advantages([single], scorer, tokenizer)[0]
    assert scorer.pairs == 1  # only the shared prompt context (no turn before an answer: no gain at all)
    assert [single.nodes[x].credit_reward for x in leaves] == [1.0, 0.0]
    assert adv[leaves[0]][leaves[0]] == pytest.approx(1.0, rel=1e-5) and adv[leaves[1]][leaves[1]] == pytest.approx(-1.0, rel=1e-5)
    tied = TrajectoryTree(task=TASK)
    leaves = [add_path(tied, [[1], [MARK]], 1.0) for _ in range(3)]
    adv = credit_and_advantages([tied], CountingScorer(), tokenizer)[0]
    assert all(v == 0.0 for leaf in leaves for v in adv[leaf].values())


def test_branched_tree_scores_a_shared_prefix_once(tokenizer):
    tree = TrajectoryTree(task=TASK)
    root = tree.add(Turn(id=0, prefix_ids=[1], action_ids=[7], logprobs=[-1.0])).id
    a = add_path(tree, [[MARK], [MARK]], 1.0, parent=root)  # root -> x -> a
    x = tree.nodes[a].parent
    b = add_path(tree, [[MARK]], 0.0, parent=root)  # a branch re-sampling x's turn: b's context == x's
    scorer = CountingScorer()
    adv = credit_and_advantages([tree], scorer, tokenizer)[0]
    assert scorer.calls == 1 and scorer.pairs == 3  # contexts of root, x (== b) and a
    assert tree.nodes[root].credit_reward == pytest.approx(0.5) and tree.nodes[x].credit_reward == pytest.approx(0.5)
    ig, out = zscore([0.5, 0.5]), zscore([1.0, 0.0])  # the shared root's gain counts once
    assert ig == [0.0, 0.0]
    assert adv[a] == pytest.approx({root: out[0], x: out[0], a: out[0]})
    assert adv[b] == pytest.approx({root: out[1], b: out[1]})


def real_trees(tokenizer):
    """A flat group and a branched tree of real token ids (random-ish, within the vocabulary)."""
    ids = lambda k, n: [(k * 37 + i * 11) % 200 + 10 for i in range(n)]  # noqa: E731
    flat = TrajectoryTree(task=TASK)
    add_path(flat, [ids(1, 9), ids(2, 5), ids(3, 4)], 1.0)
    add_path(flat, [ids(1, 9), ids(4, 6)], 0.0)
    branched = TrajectoryTree(task={"question": "q", "answer": "Paris"})
    root = branched.add(Turn(id=0, prefix_ids=ids(5, 8), action_ids=ids(6, 3), logprobs=[-1.0] * 3)).id
    add_path(branched, [ids(7, 4), ids(8, 3)], 1.0, parent=root)
    add_path(branched, [ids(7, 4)], 0.0, parent=root)
    return [flat, branched]


def test_real_scorer_gains_are_the_gold_answer_log_prob_increase(tiny_policy, tokenizer):
    trees = real_trees(tokenizer)
    credit_and_advantages(trees, tiny_policy.score, tokenizer)
    prefix, gold = tokenizer.encode("<answer>", add_special_tokens=False), tokenizer.encode("Ada Lovelace", add_special_tokens=False)
    flat = trees[0]
    value = lambda node: sum(tiny_policy.score([flat.context_ids(node) + prefix], [gold])[0]) / len(gold)  # noqa: E731
    assert flat.nodes[0].credit_reward == pytest.approx(value(1) - value(0), abs=1e-5)
    assert flat.nodes[1].credit_reward == pytest.approx(value(2) - value(1), abs=1e-5)
    assert flat.nodes[3].credit_reward == pytest.approx(value(4) - value(3), abs=1e-5)
    assert flat.nodes[0].credit_reward != 0.0  # the evidence tokens really move the tiny model


@pytest.mark.parametrize("kind", ["log_prob_diff", "prob_diff"])
@pytest.mark.parametrize("tree_pass", [True, False], ids=["batched-rows", "distinct-contexts"])
def test_batched_gain_equals_naive_per_turn_gain(tiny_policy, tokenizer, kind, tree_pass):
    from agentgym.trainers.info_gain import information_gain

    trees = real_trees(tokenizer)
    leaves = [t.leaves() for t in trees]
    values = batched_values(trees, leaves, tiny_policy.score, tokenizer, "<answer>", tree_pass=tree_pass)
    for tree, v, ls in zip(trees, values, leaves):
        batched = information_gain(tree, v, kind)
        naive = naive_information_gain(tree, ls, tiny_policy.score, tokenizer, "<answer>", kind)
        assert batched.keys() == naive.keys() and batched
        assert all(abs(batched[k] - naive[k]) <= 1e-5 for k in batched)


@pytest.mark.parametrize("answer_prefix", ["<answer>", ""], ids=["prefix", "no-prefix"])
@pytest.mark.parametrize("trunk", [True, False], ids=["shared-trunk", "no-trunk"])
@pytest.mark.parametrize("max_tokens", [8192, 1], ids=["one-pass", "row-per-pass"])
def test_tree_pass_rows_equal_teacher_forcing_each_context(tiny_policy, tokenizer, monkeypatch, answer_prefix, trunk,
                                                           max_tokens):
    """Every layout of the batched rows (the common prefix cached once or not, rows in one forward pass or
    one each, an answer prefix or none) gives each node's value as a direct `score` of its context."""
    from agentgym.policies import kv_cache
    from agentgym.trainers.info_gain import encode, scored_nodes
    from agentgym.trainers.tree_pass import tree_pass_values

    if not trunk:
        monkeypatch.setattr(kv_cache, "supported", lambda config: False)
    prefix, gold = encode(tokenizer, answer_prefix), encode(tokenizer, "Ada Lovelace")
    for tree in real_trees(tokenizer):
        nodes = scored_nodes(tree, tree.leaves())
        values = tree_pass_values(tiny_policy.model, tree, nodes, prefix, gold, max_tokens=max_tokens)
        assert sorted(values) == nodes
        for node in nodes:
            direct = tiny_policy.score([tree.context_ids(node) + prefix], [gold])[0]
            assert values[node] == pytest.approx(sum(direct) / len(direct), abs=1e-5)


def test_tree_pass_with_nothing_to_predict_the_first_gold_token_is_an_error(tiny_policy, tokenizer):
    from agentgym.trainers.tree_pass import tree_pass_values

    tree = TrajectoryTree(task=TASK)
    add_path(tree, [[], [5, 6]], 1.0)  # the root's context is empty
    with pytest.raises(ValueError, match="empty context and an empty answer prefix"):
        tree_pass_values(tiny_policy.model, tree, [0, 1], [], [11, 12])


@pytest.mark.parametrize("task", [{"question": "Who?"}, {"question": "Who?", "golden_answers": []},
                                  {"question": "Who?", "answer": "  "}, {"question": "Who?", "answer": None}])
def test_question_without_gold_answer_is_a_clear_error(tokenizer, task):
    tree = TrajectoryTree(task=task)
    add_path(tree, [[1], [MARK]], 1.0)
    scorer = CountingScorer()
    with pytest.raises(MissingGoldAnswer, match="IGPO needs a gold answer .* 'Who\\?'"):
        credit_and_advantages([tree], scorer, tokenizer)
    assert scorer.calls == 0


def igpo_run_config(tmp_path, env_id, **trainer):
    return load_config(run_dir=str(tmp_path), env={"id": env_id}, policy={"model": "tiny"},
                       rollout={"group_size": 2}, algorithm={"name": "igpo"},
                       logging={"tensorboard": False, "progress": False},
                       trainer={"steps": 1, "tasks_per_step": 1, **trainer})


def test_igpo_refuses_an_env_without_gold_answers_before_training(tmp_path):
    from agentgym.trainers.rl import RLRun

    with pytest.raises(ConfigError, match=r"^env\.id: algorithm igpo .*agentgym/TestLetterE-v0 gave a question "
                                          r"without one \(training step 0, task seed \d+\)"):
        RLRun(igpo_run_config(tmp_path, "agentgym/TestLetterE-v0"), quiet=True)
    assert not any(tmp_path.iterdir())  # refused before the run wrote anything (run.json, trajectories, checkpoints)


def test_igpo_finds_a_blank_gold_answer_in_a_later_step_before_training(tmp_path):
    """Not only the first question: every training question of the run is checked up front."""
    from agentgym.registry import make
    from agentgym.trainers.rl import RLRun
    from agentgym.trainers.session import task_seeds

    cfg = igpo_run_config(tmp_path, "agentgym/TestSometimesUnanswered-v0", steps=20, tasks_per_step=2)
    env = make("agentgym/TestSometimesUnanswered-v0")
    blank = [(step, s) for step in range(20) for s in task_seeds(cfg.seed, step, 2)
             if env.reset(seed=s)[1]["task"]["answer"] is None]
    assert blank and blank[0][0] > 0  # the first blank question comes after step 0
    with pytest.raises(ConfigError, match=rf"without one \(training step {blank[0][0]}, task seed {blank[0][1]}\).*"
                                          r"IGPO needs a gold answer .*'What is 0 \+ 1\?'"):
        RLRun(cfg, quiet=True)
    assert not any(tmp_path.iterdir())
    RLRun(igpo_run_config(tmp_path / "ok", "agentgym/TestSometimesUnanswered-v0", steps=blank[0][0]), quiet=True)


def test_cli_train_refuses_igpo_without_gold_answers_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from agentgym.cli import app

    (tmp_path / "igpo.yaml").write_text(f"run_dir: {tmp_path / 'run'}\nenv: {{id: agentgym/TestLetterE-v0}}\n"
                                        "policy: {model: tiny}\nalgorithm: {name: igpo}\n")
    result = CliRunner().invoke(app, ["train", str(tmp_path / "igpo.yaml")])
    assert result.exit_code == 2 and "error:" in result.output and "gold answer" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


@pytest.mark.slow(ci=True)  # ~40 s on the shared 2-core machine
def test_igpo_trains_two_steps_on_web_search(tmp_path):
    from agentgym.trainers.rl import RLRun

    cfg = load_config(run_dir=str(tmp_path), seed=0, policy={"model": "tiny"},
                      env={"id": "agentgym/WebSearch-v0", "kwargs": {"reward": "f1", "world_pages": 300},
                           "limits": {"max_turns": 3, "max_tokens_per_turn": 16, "max_tokens_per_episode": 64}},
                      rollout={"group_size": 3, "deterministic": True}, algorithm={"name": "igpo"},
                      logging={"tensorboard": False, "progress": False},
                      trainer={"steps": 2, "tasks_per_step": 2, "lr": 1e-3})
    run = RLRun(cfg, quiet=True)
    history = run.train()
    assert len(history) == 2 and any(h["trained_tokens"] > 0 for h in history)
    assert (tmp_path / "checkpoints" / "step-000002").exists()
    trees = run.store.read_all()
    for t in trees:
        for leaf in t.leaves():
            expected = t.leaf_reward(leaf) if t.nodes[leaf].terminated else -2.0
            assert t.nodes[leaf].credit_reward == pytest.approx(expected)
    gains = [n.credit_reward for t in trees for n in t.nodes if t.children(n.id)]
    assert gains and all(g is not None and math.isfinite(g) for g in gains)  # multi-turn: the gains were scored
