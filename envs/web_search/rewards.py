"""Answer rewards as in Search-R1 (exact match and token F1 after SQuAD-style normalisation), citation
parsing, and which pages a trajectory really retrieved (from the structured data of its tool calls).

Citations are accepted in two styles: CaRR's inline ``[[n](url)]`` and bare ``[n]`` resolved through a
reference list in the answer (lines like ``[n] url`` or ``[n]: url``). Only citations of pages the
trajectory actually retrieved (returned by a search or opened) are kept; the rest are reported as invalid.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any, Iterable

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_INLINE = re.compile(r"\[\[(\d+)\]\((?:view-source:)?(\S+?)\)\]")
_REF_LINE = re.compile(r"^\s*\[(\d+)\]:?\s+<?(\S+?)>?\s*$", re.M)
_BARE = re.compile(r"(?<!\[)\[(\d+)\](?![(\]:])")


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and articles, collapse whitespace (Search-R1 / SQuAD)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golden: str | Iterable[str]) -> float:
    answers = [golden] if isinstance(golden, str) else list(golden)
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in answers))


def token_f1(prediction: str, golden: str | Iterable[str]) -> float:
    """Best token-level F1 over the golden answers."""
    answers = [golden] if isinstance(golden, str) else list(golden)
    pred = normalize_answer(prediction).split()
    best = 0.0
    for g in answers:
        gold = normalize_answer(g).split()
        common = sum((Counter(pred) & Counter(gold)).values())
        if common == 0:
            continue
        precision, recall = common / len(pred), common / len(gold)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def strip_citations(answer: str) -> str:
    """The answer text without citation markers or a reference list (what EM/F1 grade)."""
    text = re.split(r"\n\s*#*\s*References\b", answer, maxsplit=1, flags=re.I)[0]
    text = _REF_LINE.sub("", text)
    text = _INLINE.sub("", text)
    text = _BARE.sub("", text)
    return " ".join(text.split())


def parse_citations(answer: str) -> list[dict[str, Any]]:
    """Citations in order of appearance: ``{"n": int, "url": str | None, "style": "inline" | "bare"}``."""
    refs = {int(n): url for n, url in _REF_LINE.findall(answer)}
    body = re.split(r"\n\s*#*\s*References\b", answer, maxsplit=1, flags=re.I)[0]
    body_wo_refs = _REF_LINE.sub("", body)
    found: list[tuple[int, dict[str, Any]]] = []
    for m in _INLINE.finditer(body_wo_refs):
        found.append((m.start(), {"n": int(m.group(1)), "url": m.group(2), "style": "inline"}))
    for m in _BARE.finditer(_INLINE.sub(lambda x: " " * len(x.group(0)), body_wo_refs)):
        found.append((m.start(), {"n": int(m.group(1)), "url": refs.get(int(m.group(1))), "style": "bare"}))
    return [c for _, c in sorted(found, key=lambda item: item[0])]


def retrieved_pages(tool_calls: Iterable[dict[str, Any] | Any]) -> dict[str, list[str]]:
    """Pages a trajectory retrieved, from its tool-call records' ``data``: addresses (url or id)
    ``returned`` by searches and ``opened``, each in first-seen order."""
    returned: dict[str, None] = {}
    opened: dict[str, None] = {}
    for call in tool_calls:
        data = call.get("data") if isinstance(call, dict) else getattr(call, "data", None)
        if not data:
            continue
        for hit in data.get("results", []):
            for key in ("url", "id"):
                if hit.get(key):
                    returned.setdefault(hit[key], None)
        page = data.get("opened")
        if page:
            for key in ("url", "id"):
                if page.get(key):
                    opened.setdefault(page[key], None)
    return {"returned": list(returned), "opened": list(opened)}


def grade_citations(answer: str, retrieved: dict[str, list[str]]) -> dict[str, list[dict[str, Any]]]:
    """Split an answer's citations into ``valid`` (the page was retrieved in this trajectory) and ``invalid``."""
    seen = set(retrieved.get("returned", [])) | set(retrieved.get("opened", []))
    valid, invalid = [], []
    for c in parse_citations(answer):
        (valid if c["url"] and c["url"].rstrip("/") in {s.rstrip("/") for s in seen} else invalid).append(c)
    return {"valid": valid, "invalid": invalid}
