"""C-GRPO with CaRR rubric rewards (trainers/cgrpo.py, trainers/judges.py): hand-built trees with
hand-computed rewards (identification, citations actually retrieved, BFS from E0, group-max vs raw, zero
rubrics), the LLM judge's typed failures over real backends, and 2 training steps on the web-search env."""

from __future__ import annotations

import json

import pytest

from agentgym.algorithms import algorithm_spec
from agentgym.config import ConfigError, load_config
from agentgym.policies import ScriptedPolicy
from agentgym.trainers.cgrpo import CGRPOCredit, leaf_evidence
from agentgym.trainers.judges import JudgeFailure, LLMJudge, RuleJudge, parse_verdict
from agentgym.trainers.pieces import CreditContext
from agentgym.trajectory import ToolCallRecord, TrajectoryTree, Turn

ACME, ANN = "https://kb.test/wiki/acme", "https://kb.test/wiki/ann"
TASK = {"id": "t", "question": "Where was the founder of Acme born?", "answer": "Paris",
        "rubrics": ["<E2> was founded by <E1>.", "<E1> was born in <E0>."],
        "gold_chain": {"entities": {"E0": {"name": "Paris"}, "E1": {"name": "Ann Lee"}, "E2": {"name": "Acme"}},
                       "hops": [{"subject": "E2", "object": "E1", "url": ACME}, {"subject": "E1", "object": "E0", "url": ANN}]}}


def search(*urls: str) -> ToolCallRecord:
    return ToolCallRecord(name="search", output="\n".join(f"{u}: a page" for u in urls),
                          data={"results": [{"url": u} for u in urls]})


def tree_of(leaves: list[tuple[list[str], str, float]], task=TASK) -> tuple[TrajectoryTree, list[int]]:
    """Each leaf: (urls its one search returned, final answer text, outcome reward)."""
    tree, ids = TrajectoryTree(task=task), []
    for urls, answer, reward in leaves:
        first = tree.add(Turn(id=0, action_text="<search>q</search>", tool_calls=[search(*urls)] if urls else []))
        last = tree.add(Turn(id=0, parent=first.id, action_text=answer))
        tree.final_rewards[last.id] = reward
        ids.append(last.id)
    return tree, ids


def credit(trees, **cfg):
    c = CGRPOCredit(load_config(algorithm={"name": "cgrpo", **cfg}).algorithm)
    ctx = CreditContext(config=None, step=0)
    c(trees, ctx)
    return ctx


FULL = f"<answer>Paris [[1]({ACME})] [[2]({ANN})]</answer>"
HALF = f"<answer>Paris [[1]({ANN})]</answer>"  # E2 neither named nor its page cited: hop 1 fails
ISLAND = f"<answer>Paris. Ann Lee [[1]({ACME})]</answer>"  # hop 1 holds but does not reach E0


def test_rubric_rewards_match_hand_computed_values():
    tree, (a, b, fab, wrong, bare, island) = tree_of([
        ([ACME, ANN], FULL, 1.0), ([ANN], HALF, 1.0), ([], FULL, 1.0),  # fabricated: nothing retrieved
        ([ACME, ANN], f"<answer>Rome [[1]({ACME})]</answer>", 0.0), ([ACME, ANN], "<answer>Paris</answer>", 1.0),
        ([ACME, ANN], ISLAND, 1.0)])
    credit([tree])
    carr = tree.meta["carr"]
    assert [carr[str(i)]["rubric"] for i in (a, b, fab, wrong, bare, island)] == [1.0, 0.5, 0.0, None, 0.0, 0.0]
    assert [tree.nodes[i].credit_reward for i in (a, b, fab, wrong, bare, island)] == \
        pytest.approx([1.0, 0.85, 0.7, 0.0, 0.7, 0.7])
    assert carr[str(island)]["components"] == [
        {"rubric": "<E2> was founded by <E1>.", "identified": True, "supported": True, "connected": False},
        {"rubric": "<E1> was born in <E0>.", "identified": True, "supported": False, "connected": False}]
    assert tree.nodes[b].info["carr"]["components"][1]["connected"] is True  # stored on the leaf for the viewer
    assert all(tree.nodes[i].credit_reward is None for i in (0, 2))  # only leaves are credited


def test_a_cited_url_never_retrieved_earns_nothing():
    tree, (leaf,) = tree_of([([ACME], FULL, 1.0)])  # ANN cited but never returned
    response, evidence = leaf_evidence(tree, leaf)
    assert list(evidence) == [ACME] and "a page" in evidence[ACME]
    verdict = RuleJudge()(TASK, response, evidence)
    assert verdict.supported == [True, False]


def test_group_max_normalisation_vs_the_released_raw_variant():
    leaves = [([ANN], HALF, 1.0), ([], FULL, 1.0), ([], "<answer>no</answer>", 0.0)]
    paper, _ = tree_of(leaves)
    raw, _ = tree_of(leaves)
    credit([paper])
    credit([raw], normalize="raw")
    assert [paper.nodes[i].credit_reward for i in paper.leaves()] == pytest.approx([1.0, 0.7, 0.0])  # 0.5 / max 0.5
    assert [raw.nodes[i].credit_reward for i in raw.leaves()] == pytest.approx([0.85, 0.7, 0.0])


def test_zero_rubrics_and_all_equal_groups_keep_the_outcome():
    task = {k: v for k, v in TASK.items() if k not in ("rubrics", "gold_chain")}
    tree, ids = tree_of([([ACME], FULL, 1.0), ([], "<answer>x</answer>", 0.0)], task=task)
    credit([tree])
    assert [tree.nodes[i].credit_reward for i in ids] == [1.0, 0.0]
    same, ids = tree_of([([ACME, ANN], FULL, 1.0)] * 3)
    credit([same])
    algo = algorithm_spec("cgrpo").build(load_config(algorithm={"name": "cgrpo"}), None)
    from agentgym.trainers.pieces import AdvantageStats
    adv = algo.advantage([same], AdvantageStats())[0]
    assert all(v == 0 for per in adv.values() for v in per.values())


def judge_policy(tokenizer, reply):
    return ScriptedPolicy(lambda context: reply(context), tokenizer)


def test_llm_judge_parses_caches_and_types_garbage(tokenizer):
    good = json.dumps({"E0": "Paris", "E1": "Ann Lee", "E2": None, "S1": False, "S2": True})
    policy = judge_policy(tokenizer, lambda c: f"Sure. {good}")
    judge = LLMJudge(policy)
    v = judge(TASK, HALF, {ANN: "Ann Lee was born in Paris."})
    assert v.entities == {"E0": "Paris", "E1": "Ann Lee", "E2": None} and v.supported == [False, True]
    judge(TASK, HALF, {ANN: "Ann Lee was born in Paris."})
    assert policy.calls == 1  # the second identical judgement came from the cache
    for garbage in ("no json here", '{"E0": "Paris"}', '{"E0": 1, "E1": null, "E2": null, "S1": true, "S2": true}',
                    '{"E0": null, "E1": null, "E2": null, "S1": "yes", "S2": true}'):
        with pytest.raises(JudgeFailure) as err:
            parse_verdict(garbage, ["E0", "E1", "E2"], 2)
        assert err.value.kind == "unparsable"


def test_judge_garbage_and_timeouts_are_excluded_from_the_reward_and_counted(tokenizer, tiny_policy):
    good = json.dumps({"E0": "Paris", "E1": "Ann Lee", "E2": None, "S1": False, "S2": True})
    reply = (lambda c: good if "Ann Lee was born" not in c else "garbage")
    tree, (a, b) = tree_of([([ANN], HALF, 1.0), ([ACME, ANN], f"<answer>Paris Ann Lee was born [[1]({ANN})]</answer>", 1.0)])
    c = CGRPOCredit(load_config(algorithm={"name": "cgrpo", "judge": "llm", "judge_policy": "tiny"}).algorithm,
                    judge=LLMJudge(judge_policy(tokenizer, reply)))
    ctx = CreditContext(config=None, step=0)
    c([tree], ctx)
    assert tree.meta["carr"][str(b)]["judge_failure"] == "unparsable" and ctx.state["judge_failures"]["unparsable"] == 1
    assert tree.meta["carr"][str(a)]["rubric"] == 0.5
    assert tree.nodes[b].credit_reward == pytest.approx(1.0)  # neutral: the group's mean normalised term (1.0)
    with pytest.raises(JudgeFailure) as err:  # the tiny random model: garbage, or too slow for 1 ms
        LLMJudge(tiny_policy, timeout_s=1e-3)(TASK, HALF, {})
    assert err.value.kind == "timeout"
    with pytest.raises(JudgeFailure) as err:
        LLMJudge(tiny_policy, timeout_s=120, max_new_tokens=8)(TASK, HALF, {})
    assert err.value.kind == "unparsable"


@pytest.mark.parametrize("section,message", [({"judge": "llm"}, "judge_policy"), ({"rubric_weight": 2}, "rubric_weight"),
                                             ({"normalize": "mean"}, "normalize")])
def test_bad_config_is_a_clear_error(section, message):
    with pytest.raises(ConfigError, match=message):
        load_config(algorithm={"name": "cgrpo", **section})


@pytest.mark.slow(ci=True)
def test_cgrpo_trains_two_steps_on_the_web_search_env(tmp_path):
    from agentgym.trainers.rl import RLRun

    cfg = load_config(run_dir=str(tmp_path / "cgrpo"), seed=1, policy={"model": "tiny"}, rollout={"group_size": 3},
                      env={"id": "agentgym/WebSearch-v0", "limits": {"max_turns": 2, "max_tokens_per_turn": 16,
                                                                      "max_tokens_per_episode": 64}},
                      algorithm={"name": "cgrpo"}, logging={"tensorboard": False, "progress": False},
                      trainer={"steps": 2, "tasks_per_step": 2, "lr": 1e-3})
    run = RLRun(cfg, quiet=True)
    history = run.train()
    assert len(history) == 2 and any(h["trained_tokens"] > 0 for h in history)
    for tree in run.store.read_all():
        assert set(tree.meta["carr"]) == {str(leaf) for leaf in tree.leaves()}
        assert tree.task["rubrics"]


def test_unreachable_or_slow_judge_is_typed_counted_and_leaves_the_outcome(tokenizer, tiny_policy):
    """A judge server that is down (a loopback port nobody listens on) or too slow: every judged leaf is
    kept out of the rubric reward (reward = outcome), its failure kind stored on it and counted per kind."""
    from agentgym.launch import free_port
    from agentgym.policies.openai_compat import OpenAICompatPolicy

    port = free_port()  # a free loopback port, closed again: connecting is refused
    down = OpenAICompatPolicy(f"http://127.0.0.1:{port}/v1", model="judge", tokenizer=tokenizer, max_attempts=1,
                              timeout_s=5)
    cfg = load_config(algorithm={"name": "cgrpo", "judge": "llm", "judge_policy": "tiny"}).algorithm
    for judge, kind in ((LLMJudge(down), "backend_error"), (LLMJudge(tiny_policy, timeout_s=1e-3), "timeout")):
        tree, (a, b, wrong) = tree_of([([ACME, ANN], FULL, 1.0), ([ANN], HALF, 1.0), ([ANN], "<answer>Rome</answer>", 0.0)])
        ctx = CreditContext(config=None, step=0)
        CGRPOCredit(cfg, judge=judge)([tree], ctx)
        assert ctx.state["judge_failures"] == {kind: 2}  # the wrong answer is never judged
        carr = tree.meta["carr"]
        assert carr[str(a)]["judge_failure"] == carr[str(b)]["judge_failure"] == kind
        assert carr[str(a)]["rubric"] is None and carr[str(a)]["components"] == []
        assert [tree.nodes[i].credit_reward for i in (a, b, wrong)] == [1.0, 1.0, 0.0]
    down.close()
