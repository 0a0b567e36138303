"""Per-token text for the heatmap: exact with a tokenizer the run names and can load offline, an honest
approximation without one, and the tree JSON the page receives."""

from __future__ import annotations

import json

import pytest

from agentgym.viewer.tokens import choose_tokenizer, proportional_pieces, token_pieces
from agentgym.viewer.treeview import diff_ops, sibling_diff, tree_json
from viewer_helpers import small_trees

tokenizers = pytest.importorskip("tokenizers")

TEXTS = ["<think>Héllo wörld, 日本語 and 😀 emoji</think>\n<calculator>17*23</calculator>",
         "  leading spaces\n\n\ttabs and ünïcödé", "<answer>391</answer>"]


@pytest.fixture(scope="module")
def bpe_file(tmp_path_factory):
    """A small byte-level BPE tokenizer trained on the spot (no download), saved as tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TEXTS * 20 + ["the calculator result is 391 " * 5], trainer)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return path


def test_pieces_join_to_the_text_even_when_characters_span_tokens(bpe_file):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(bpe_file))
    for text in TEXTS:
        ids = tok.encode(text).ids
        pieces = token_pieces(tok, ids)
        assert len(pieces) == len(ids)
        assert "".join(pieces) == text
        assert "\ufffd" not in "".join(pieces)
    emoji_ids = tok.encode("😀").ids
    assert len(emoji_ids) > 1  # a 4-byte character split over byte tokens: the last one carries it
    assert token_pieces(tok, emoji_ids)[-1] == "😀" and set(token_pieces(tok, emoji_ids)[:-1]) == {""}


def test_run_json_names_the_tokenizer(tmp_path, bpe_file):
    (tmp_path / "run.json").write_text(json.dumps({"tokenizer": str(bpe_file.parent)}))
    choice = choose_tokenizer(tmp_path)
    assert choice.exact and "decoded with" in choice.note
    (tmp_path / "run.json").write_text(json.dumps({"policy": "hf:someone/not-in-the-cache-xyz"}))
    choice = choose_tokenizer(tmp_path)
    assert not choice.exact and "not available offline" in choice.note
    (tmp_path / "run.json").write_text(json.dumps({"policy": "openai:http://localhost:8000"}))
    assert "does not name" in choose_tokenizer(tmp_path).note
    assert choose_tokenizer(tmp_path, {"tokenizer": str(bpe_file)}).exact  # a tree's meta works too


def test_proportional_fallback_covers_the_text_once():
    for text, n in [("abcdefghij", 3), ("ab", 5), ("", 2), ("x" * 101, 7)]:
        pieces = proportional_pieces(text, n)
        assert len(pieces) == n and "".join(pieces) == text


def test_tree_json_exact_and_approximate(tmp_path, bpe_file):
    from tokenizers import Tokenizer

    tree = small_trees(1, seed=4)[0]
    tok = Tokenizer.from_file(str(bpe_file))
    for node in tree.nodes:  # store real ids, as a rollout would
        node.action_ids = tok.encode(node.action_text).ids
        node.entropies = [0.5] * len(node.action_ids)
        node.logprobs = [-0.1] * len(node.action_ids)
    (tmp_path / "run.json").write_text(json.dumps({"tokenizer": str(bpe_file)}))
    exact = tree_json(tree, choose_tokenizer(tmp_path))
    approx = tree_json(tree, choose_tokenizer(tmp_path / "elsewhere"))
    for node, e, a in zip(tree.nodes, exact["nodes"], approx["nodes"]):
        assert "".join(e["pieces"]) == node.action_text == "".join(a["pieces"])
        assert len(e["pieces"]) == len(a["pieces"]) == len(node.action_ids)
        assert "prefix_ids" not in e and e["prefix_tokens"] == len(node.prefix_ids)
    assert exact["tokenizer"]["exact"] and not approx["tokenizer"]["exact"]
    assert exact["branch_points"] == tree.branch_points()
    json.dumps(exact, allow_nan=False)


def test_non_finite_numbers_become_null(tmp_path):
    tree = small_trees(1)[0]
    tree.nodes[0].entropies[0] = float("nan")
    tree.nodes[0].reward = float("inf")
    out = tree_json(tree, choose_tokenizer(tmp_path))
    json.dumps(out, allow_nan=False)
    assert out["nodes"][0]["entropies"][0] is None and out["nodes"][0]["reward"] is None


def test_sibling_diff(calc_tree):
    branch = calc_tree.branch_points()[0]
    source = calc_tree.nodes[branch].branched_from
    d = sibling_diff(calc_tree, source, branch)
    assert ["delete", "391"] in d["ops"] and ["insert", "390"] in d["ops"]
    assert (d["reward_a"], d["reward_b"]) == (1.0, 0.0)
    with pytest.raises(ValueError, match="not siblings"):
        sibling_diff(calc_tree, 0, branch)
    assert diff_ops("a b c", "a x c") == [["equal", "a "], ["delete", "b"], ["insert", "x"], ["equal", " c"]]
