"""Assembling a search env's corpus, engine and questions from its options (shared by the web-search,
deep-research and ReAct envs, so all three see the same pages and the same questions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from agentgym.envs.web_search.corpus import Corpus, CorpusError, load_corpus, load_wiki_corpus, read_jsonl
from agentgym.envs.web_search.engine import LocalEngine, SearchEngine
from agentgym.envs.web_search.index import IndexCache
from agentgym.envs.web_search.questions import make_question
from agentgym.envs.web_search.world import World

WORLD_QUESTIONS = 1_000_000  # question indices a generated world draws from (per split)
DEFAULT_HOPS = (2, 4)
MAX_HOPS = 6  # the world's relation graph has longer acyclic chains, but questions past 6 hops read as noise


def question_hops(hops: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """A generated world's question length: n hops, or (least, most) hops drawn uniformly per question."""
    pair = (hops, hops) if isinstance(hops, int) and not isinstance(hops, bool) else hops
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or not all(isinstance(h, int) and not isinstance(h, bool) for h in pair)
            or not 1 <= pair[0] <= pair[1] <= MAX_HOPS):
        raise ValueError(f"hops must be an integer or a [least, most] pair with 1 <= least <= most <= {MAX_HOPS}, "
                         f"got {hops!r}")
    return int(pair[0]), int(pair[1])


class SearchSetup:
    """What an env needs: engine, corpus (None for remote engines), world (None for file corpora), questions."""

    def __init__(self, corpus: str = "world", world_pages: int = 3000, world_seed: int = 0,
                 background: str | None = None, questions: str | None = None, index: str = "bm25",
                 engine: dict | None = None, split: str = "train", index_cache: IndexCache | None = None,
                 hops: int | tuple[int, int] | list[int] = DEFAULT_HOPS):
        self.hops = question_hops(hops)
        if background not in (None, "wiki"):
            raise ValueError(f"background must be None or 'wiki', got {background!r}")
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.split = split
        self.cache = index_cache or IndexCache.default()
        self.world: World | None = None
        self.corpus: Corpus | None = None
        self.file_questions = load_questions(questions) if questions else None
        if engine is not None:
            from agentgym.envs.web_search.remote import RemoteEngine

            self.engine: SearchEngine = RemoteEngine(engine)
            if self.file_questions is None:
                raise ValueError("a remote engine needs a question file (questions=...)")
            return
        if corpus == "world":
            world = self.world = self.cache.shared(("world", world_pages, world_seed), lambda: World(world_pages, world_seed))
            docs = self.cache.shared(("world-docs", world_pages, world_seed), lambda: Corpus(world.documents(), "world"))
        else:
            path = Path(corpus).resolve()
            stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path.exists() else None
            docs = self.cache.shared(("file", str(path), stamp), lambda: load_corpus(corpus))
        if background == "wiki":
            base = docs
            docs = self.cache.shared(("with-wiki", id(base)), lambda: base + load_wiki_corpus())
        if self.world is None and self.file_questions is None:
            raise ValueError(f"corpus {corpus!r} is a file: give its questions too (questions=path.jsonl)")
        self.corpus = docs
        self.engine = LocalEngine(docs, self.cache.get(docs, index), name=f"local-{index}")

    def sample_question(self, rng: np.random.Generator) -> dict[str, Any]:
        if self.file_questions is not None:
            return dict(self.file_questions[int(rng.integers(len(self.file_questions)))])
        assert self.world is not None
        return make_question(self.world, int(rng.integers(WORLD_QUESTIONS)), self.split, self.hops)


def load_questions(path: str | Path) -> list[dict[str, Any]]:
    """JSONL questions: ``question`` plus ``golden_answers`` (Search-R1) or ``answer``; extra keys kept."""
    path = Path(path)
    rows = []
    for lineno, row in read_jsonl(path):
        if not isinstance(row.get("question"), str) or not row["question"].strip():
            raise CorpusError(f"{path}:{lineno}: each line needs a non-empty string 'question'")
        answers = row.get("golden_answers", row.get("answer"))
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
            raise CorpusError(f"{path}:{lineno}: 'golden_answers' must be a non-empty list of strings")
        row["golden_answers"] = answers
        row.setdefault("answer", answers[0])
        rows.append(row)
    if not rows:
        raise CorpusError(f"{path}: no questions")
    return rows
