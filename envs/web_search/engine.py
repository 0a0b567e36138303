"""Search engines behind the `search` and `open` tools: what a hit and a page are, the local engine over
a `Corpus`, and the sanitiser every text passes before a model sees it.

Web text is data, never instructions: `sanitize` removes control characters and chat-template special
tokens, and defuses anything that looks like a tag (``<answer>``, ``<tool_call>``, ``<|im_start|>``), so
text in a result can neither end the episode nor open a fake tool call or message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from agentgym.envs.web_search.corpus import Corpus
from agentgym.envs.web_search.index import Retriever
from agentgym.tools import ToolError

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SPECIAL = re.compile(r"<\|[^<>|]{0,64}\|>|<\uff5c[^<>]{0,64}\uff5c>")
_TAG = re.compile(r"<(/?\s*[A-Za-z_][\w:.\-]*[^<>]{0,200})>")


def sanitize(text: str, max_chars: int | None = None) -> tuple[str, bool]:
    """(clean text, whether anything was defused)."""
    clean = _CONTROL.sub("", text)
    clean = _SPECIAL.sub("", clean)
    clean = _TAG.sub(lambda m: "\u2039" + m.group(1) + "\u203a", clean)
    changed = clean != _CONTROL.sub("", text)
    if max_chars is not None and len(clean) > max_chars:
        clean = clean[:max_chars]
    return clean, changed


@dataclass
class Hit:
    id: str
    title: str
    snippet: str
    url: str | None = None
    score: float = 0.0

    @property
    def address(self) -> str:
        return self.url or self.id


@dataclass
class Page:
    id: str
    title: str
    text: str
    url: str | None = None
    truncated: bool = False  # the remote page was larger than the size cap

    @property
    def address(self) -> str:
        return self.url or self.id


class SearchEngine(Protocol):
    name: str

    def search(self, query: str, k: int) -> list[Hit]: ...

    def open(self, address: str) -> Page: ...


def snippet(text: str, query_terms: set[str], width: int = 220) -> str:
    """A window of `text` around the first sentence mentioning a query term (else the start)."""
    sentences = re.split(r"(?<=[.!?])\s+", text)
    best = 0
    for i, s in enumerate(sentences):
        words = {w.lower().strip(".,()") for w in s.split()}
        if words & query_terms:
            best = i
            break
    out = " ".join(sentences[best:])[:width]
    return out + ("…" if len(" ".join(sentences[best:])) > width else "")


class LocalEngine:
    """Search a local corpus through a retriever (BM25, dense or hybrid)."""

    def __init__(self, corpus: Corpus, retriever: Retriever, name: str = "local"):
        self.corpus, self.retriever, self.name = corpus, retriever, name

    def search(self, query: str, k: int) -> list[Hit]:
        terms = {w.lower() for w in re.findall(r"\w+", query) if len(w) > 2}
        hits = []
        for pos, score in self.retriever.search(query, k):
            d = self.corpus.docs[pos]
            hits.append(Hit(id=d.id, title=d.title, snippet=snippet(d.text, terms), url=d.url, score=score))
        return hits

    def open(self, address: str) -> Page:
        doc = self.corpus.get(address)
        if doc is None:
            raise ToolError(f"No page at {address[:200]!r}. Open a url or id exactly as a search result gives it.",
                            "tool_error")
        return Page(id=doc.id, title=doc.title, text=doc.text, url=doc.url)
