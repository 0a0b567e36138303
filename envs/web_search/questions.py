"""Multi-hop questions over a `World`, each with its gold answer and gold evidence chain.

A question names a start entity by a unique descriptor and asks for the end of a 2-4 relation chain,
phrased as nested English: "What is the city where the founder of Kaverin Labs (bank, founded 1932) was
born?". The gold chain follows CaRR's convention: ``E0`` is the answer entity, ``E1 … En`` the hidden
intermediates (E_n is the start), and each hop records its page, url, one supporting sentence and the
same statement over placeholders (``<E2> was born in <E1>.``), as C-GRPO's rubrics are written.

Splits are disjoint in start entities (a hash of the id), so test questions are held out from training.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np

from agentgym.envs.web_search.world import RELATIONS, World

# relation -> (prefix, suffix) around the inner phrase
PHRASES: dict[str, tuple[str, str]] = {
    "birthplace": ("the city where ", " was born"),
    "employer": ("the organisation that employs ", ""),
    "mentor": ("the mentor of ", ""),
    "headquarters": ("the city where ", " is headquartered"),
    "founder": ("the founder of ", ""),
    "country": ("the country that contains ", ""),
    "mayor": ("the mayor of ", ""),
    "capital": ("the capital of ", ""),
    "venue": ("the city that hosted ", ""),
    "organiser": ("the organisation that organised ", ""),
}
_BY_KIND: dict[str, list[str]] = {}
for _rel, (_subj, _obj, _t) in RELATIONS.items():
    _BY_KIND.setdefault(_subj, []).append(_rel)

SPLITS = ("train", "test")


def split_of(entity_id: str) -> str:
    """Held-out split by start entity: about 1 in 5 entities start only test questions."""
    return "test" if hashlib.sha256(entity_id.encode()).digest()[0] % 5 == 0 else "train"


def phrase(relations: list[str], start: str) -> str:
    text = start
    for rel in relations:
        prefix, suffix = PHRASES[rel]
        text = prefix + text + suffix
    return text


def parse_question(question: str) -> tuple[str, list[str]] | None:
    """Inverse of `phrase` on a question's text: (start descriptor, relations in chain order)."""
    m = re.search(r"What is (.+)\?\s*$", question.strip(), re.S)
    if not m:
        return None
    text, outer_first = m.group(1), []
    while True:
        for rel, (prefix, suffix) in PHRASES.items():
            if text.startswith(prefix) and text.endswith(suffix) and len(text) > len(prefix) + len(suffix):
                outer_first.append(rel)
                text = text[len(prefix): len(text) - len(suffix)]
                break
        else:
            break
    return (text, outer_first[::-1]) if outer_first else None


def make_question(world: World, index: int, split: str = "train", hops: tuple[int, int] = (2, 4)) -> dict[str, Any]:
    """Question number `index` of `split` (deterministic in the world's seed)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = np.random.default_rng([world.seed, index, SPLITS.index(split), 11])
    kinds = [k for k in _BY_KIND]
    for _ in range(1000):
        kind = kinds[int(rng.integers(len(kinds)))]
        pool = world.by_kind[kind]
        start = world.entities[pool[int(rng.integers(len(pool)))]]
        if split_of(start.id) != split:
            continue
        n_hops = int(rng.integers(hops[0], hops[1] + 1))
        chain, rels, cur = [start.id], [], start
        for _ in range(n_hops):
            options = [r for r in _BY_KIND[cur.kind] if cur.rel[r] not in chain]
            if not options:
                break
            rel = options[int(rng.integers(len(options)))]
            rels.append(rel)
            cur = world.entities[cur.rel[rel]]
            chain.append(cur.id)
        if len(rels) == n_hops:
            return _question(world, start.id, rels, chain, split, index)
    raise RuntimeError(f"could not generate question {index} of split {split!r}")  # pragma: no cover


def _question(world: World, start_id: str, rels: list[str], chain: list[str], split: str, index: int) -> dict[str, Any]:
    start = world.entities[start_id]
    answer = world.entities[chain[-1]]
    n = len(rels)
    # E0 is the answer, E_n the start entity: chain[k] is E_{n-k}.
    entities = {f"E{n - k}": {"id": eid, "name": world.entities[eid].name} for k, eid in enumerate(chain)}
    hops = []
    for k, rel in enumerate(rels):
        subj = chain[k]
        hops.append({"hop": k + 1, "relation": rel, "subject": f"E{n - k}", "object": f"E{n - k - 1}",
                     "page": subj, "url": world.url(subj), "statement": world.statement(subj, rel),
                     "rubric": RELATIONS[rel][2].format(s=f"<E{n - k}>", o=f"<E{n - k - 1}>")})
    return {
        "id": f"{split}-{index}",
        "question": f"What is {phrase(rels, start.descriptor())}?",
        "answer": answer.name,
        "golden_answers": [answer.name],
        "answer_page": answer.id,
        "gold_chain": {"entities": entities, "hops": hops},
        "rubrics": [h["rubric"] for h in hops],  # CaRR-style single-hop statements over entity placeholders
        "hops": n,
        "split": split,
    }
