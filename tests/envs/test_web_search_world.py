"""The generated knowledge world: every gold chain resolves in the corpus and every answer is unique."""

from __future__ import annotations

import re

import pytest

from agentgym.envs.web_search.corpus import Corpus
from agentgym.envs.web_search.expert import parse_descriptor
from agentgym.envs.web_search.questions import make_question, parse_question, split_of
from agentgym.envs.web_search.world import RELATIONS, World


@pytest.fixture(scope="module")
def world() -> World:
    return World(3000, seed=0)


@pytest.fixture(scope="module")
def corpus(world) -> Corpus:
    return Corpus(world.documents(), "world")


def _matching_start_pages(corpus: Corpus, descriptor: str) -> list[str]:
    """Pages whose title and lead sentence match a question's start descriptor (read from the text only)."""
    name, details = parse_descriptor(descriptor)
    out = []
    for d in corpus.docs:
        if d.title != name:
            continue
        lead = re.split(r"(?<=[.!?])\s", d.text, maxsplit=1)[0]
        if all(re.search(rf"\b{re.escape(x)}\b", lead) for x in details):
            out.append(d.id)
    return out


def _follow(corpus: Corpus, page_id: str, relation: str) -> list[tuple[str, str]]:
    """Every (object name, object id) the page states for `relation` of its subject."""
    doc = corpus.get(page_id)
    template = RELATIONS[relation][2]
    pattern = re.escape(template.format(s=doc.title, o="\x00")).replace("\x00", r"(.+?) \(([\w-]+)\)")
    return re.findall(r"(?:^|(?<=[.!?] ))" + pattern, doc.text)


def test_1000_gold_chains_resolve_and_answers_are_unique(world, corpus):
    for i in range(1000):
        split = "test" if i % 4 == 0 else "train"
        q = make_question(world, i, split)
        descriptor, relations = parse_question(q["question"])
        hops = q["gold_chain"]["hops"]
        assert 2 <= len(hops) == len(relations) <= 4
        assert [h["relation"] for h in hops] == relations
        # the start descriptor singles out exactly one page, and it is the chain's first page
        starts = _matching_start_pages(corpus, descriptor)
        assert starts == [hops[0]["page"]], (q["id"], descriptor, starts)
        # every hop's page exists, holds its statement verbatim, and the statement links the next hop's page
        for k, hop in enumerate(hops):
            doc = corpus.get(hop["url"])
            assert doc is not None and doc.id == hop["page"]
            assert hop["statement"] in doc.text
            objects = _follow(corpus, hop["page"], hop["relation"])
            assert len(objects) == 1, (q["id"], hop)  # functional: one value, so the chain is unique
            next_page = hops[k + 1]["page"] if k + 1 < len(hops) else q["answer_page"]
            assert objects[0][1] == next_page
        # following the text from the start reaches exactly one answer: the gold one
        cur = starts[0]
        for rel in relations:
            (name, cur), = _follow(corpus, cur, rel)
        assert name == q["answer"] and cur == q["answer_page"]
        assert q["rubrics"][0].startswith(("<E", "The ")) and f"<E{len(hops)}>" in q["rubrics"][0]
        ents = q["gold_chain"]["entities"]
        assert ents["E0"]["name"] == q["answer"] and len(ents) == len(hops) + 1
        assert len({e["id"] for e in ents.values()}) == len(ents)  # no entity repeats in a chain


def test_names_are_shared_so_one_search_rarely_suffices(world):
    from collections import Counter

    people = Counter(world.entities[i].name for i in world.by_kind["person"])
    shared = sum(c for c in people.values() if c > 1)
    assert shared / sum(people.values()) > 0.5


def test_world_is_deterministic_and_seeded():
    a, b, c = World(500, 1), World(500, 1), World(500, 2)
    assert [d.text for d in a.documents()] == [d.text for d in b.documents()]
    assert [d.text for d in a.documents()] != [d.text for d in c.documents()]
    assert make_question(a, 5, "train") == make_question(b, 5, "train")


def test_splits_hold_out_start_entities(world):
    train = {make_question(world, i, "train")["gold_chain"]["hops"][0]["page"] for i in range(200)}
    test = {make_question(world, i, "test")["gold_chain"]["hops"][0]["page"] for i in range(200)}
    assert not train & test
    assert all(split_of(p) == "test" for p in test)


def test_world_scales_to_100k_pages():
    w = World(100_000, seed=3)
    assert len(w.entities) == 100_000
    q = make_question(w, 0, "test")
    assert q["gold_chain"]["hops"][0]["statement"] in w.page_text(w.entities[q["gold_chain"]["hops"][0]["page"]])
