"""Judges for CaRR's citation-aware rubric reward (C-GRPO, trainers/cgrpo.py; reference/algorithms.md §5.3).

A judge answers two questions about one final response, given the task's rubrics (single-hop statements
over ``<E0>`` … ``<En>``) and the evidence: the pages the response cites AND the trajectory retrieved (a
cited url never retrieved is absent from the evidence, so it can support nothing):
  - which hidden entity each placeholder is, as the response states it (None = not identified);
  - which rubrics the cited evidence supports.
`rubric_components` then scores as CaRR does: a rubric counts iff all its entities are identified, it is
supported, and it is connected to E0 by breadth-first search over such rubrics; R_rubric = counted / total.

`RuleJudge` is exact for the generated knowledge world, where a page is an entity and the gold chain names
the page stating each hop: an entity is identified when the response names it or cites its page; a hop is
supported when its page is cited. `LLMJudge` asks any policy backend (real corpora): one prompt, JSON out,
answers cached by prompt; a timeout, a backend error or an unparsable answer raises `JudgeFailure` with its
kind, and the caller keeps that leaf out of the rubric reward and counts it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from agentgym.envs.web_search.rewards import normalize_answer, strip_citations

PLACEHOLDER = re.compile(r"<(E\d+)>")


@dataclass
class Verdict:
    entities: dict[str, str | None]  # "E1" -> the name the response gives it, None if not identified
    supported: list[bool]  # per rubric


class JudgeFailure(Exception):
    def __init__(self, kind: Literal["timeout", "backend_error", "unparsable"], detail: str):
        super().__init__(f"judge {kind}: {detail}")
        self.kind, self.detail = kind, detail


class Judge(Protocol):
    def __call__(self, task: dict[str, Any], response: str, evidence: dict[str, str]) -> Verdict: ...


def entity_ids(rubrics: list[str]) -> list[str]:
    return sorted({e for r in rubrics for e in PLACEHOLDER.findall(r)}, key=lambda e: int(e[1:]))


def rubric_components(rubrics: list[str], verdict: Verdict) -> list[dict[str, Any]]:
    ents = [PLACEHOLDER.findall(r) for r in rubrics]
    ok = [all(verdict.entities.get(e) for e in es) and verdict.supported[i] for i, es in enumerate(ents)]
    reached, connected, grew = {"E0"}, [False] * len(rubrics), True
    while grew:  # BFS from E0 over the identified and supported rubrics
        grew = False
        for i, es in enumerate(ents):
            if ok[i] and not connected[i] and reached & set(es):
                connected[i], grew = True, True
                reached |= set(es)
    return [{"rubric": r, "identified": all(verdict.entities.get(e) for e in ents[i]),
             "supported": verdict.supported[i], "connected": connected[i]} for i, r in enumerate(rubrics)]


class RuleJudge:
    """The generated world's judge (needs ``task["gold_chain"]``)."""

    def __call__(self, task: dict[str, Any], response: str, evidence: dict[str, str]) -> Verdict:
        chain = task.get("gold_chain")
        if not chain:
            raise ValueError(f"task {task.get('id')!r} has no gold_chain: use the LLM judge for real corpora")
        cited = {u.rstrip("/") for u in evidence}
        page_of = {h["subject"]: h["url"].rstrip("/") for h in chain["hops"]}
        text = f" {normalize_answer(re.sub(r'<[^>]*>', ' ', strip_citations(response)))} "  # tags are not words
        entities = {e: v["name"] if f" {normalize_answer(v['name'])} " in text or page_of.get(e) in cited else None
                    for e, v in chain["entities"].items()}
        return Verdict(entities, [h["url"].rstrip("/") in cited for h in chain["hops"]])


PROMPT = """You check a research answer against single-hop statements about hidden entities.
Question: {question}
Statements (placeholders <E0> = the answer, <E1>... = intermediate entities):
{statements}
Answer:
{response}
Cited web pages (only these count as evidence):
{pages}
Reply with one JSON object only: for each placeholder id the name the answer explicitly gives it, or null;
for each statement id S1..Sn, true if the cited pages fully support it (names filled in), else false.
Example: {{"E0": "Paris", "E1": null, "S1": true, "S2": false}}"""


class LLMJudge:
    def __init__(self, policy: Any, timeout_s: float = 60.0, max_new_tokens: int = 256, page_chars: int = 2000):
        self.policy, self.timeout_s = policy, timeout_s
        self.max_new_tokens, self.page_chars = max_new_tokens, page_chars
        self.cache: dict[str, Verdict] = {}

    def prompt(self, task: dict[str, Any], response: str, evidence: dict[str, str]) -> str:
        rubrics = task.get("rubrics") or []
        pages = "\n\n".join(f"[{u}]\n{c[: self.page_chars]}" for u, c in evidence.items()) or "(none)"
        return PROMPT.format(question=task.get("question", ""), response=response, pages=pages,
                             statements="\n".join(f"S{i}: {r}" for i, r in enumerate(rubrics, 1)))

    def __call__(self, task: dict[str, Any], response: str, evidence: dict[str, str]) -> Verdict:
        from agentgym.policies.base import GenerationRequest, SamplingParams

        text = self.prompt(task, response, evidence)
        key = hashlib.sha256(text.encode()).hexdigest()
        if key in self.cache:
            return self.cache[key]
        tok = self.policy.tokenizer
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                           tokenize=False)
        ids = tok.encode(text, add_special_tokens=False)
        req = GenerationRequest(list(ids), SamplingParams(max_new_tokens=self.max_new_tokens, temperature=0.0))
        pool = ThreadPoolExecutor(max_workers=1)  # a timed-out call is abandoned, not awaited
        try:
            out = pool.submit(self.policy.generate, [req]).result(timeout=self.timeout_s)[0].text
        except FutureTimeout as e:
            raise JudgeFailure("timeout", f"no answer within {self.timeout_s} s") from e
        except Exception as e:  # noqa: BLE001 - any backend failure is typed, kept out of the reward
            raise JudgeFailure("backend_error", f"{type(e).__name__}: {e}") from e
        finally:
            pool.shutdown(wait=False)
        verdict = parse_verdict(out, entity_ids(task.get("rubrics") or []), len(task.get("rubrics") or []))
        self.cache[key] = verdict
        return verdict


def parse_verdict(text: str, entities: list[str], n_rubrics: int) -> Verdict:
    """The judge's JSON; it must name exactly the rubrics' entities and statements (as CaRR requires)."""
    m = re.search(r"\{.*\}", text, re.S)
    try:
        data = json.loads(m.group(0)) if m else None
    except json.JSONDecodeError:
        data = None
    want = set(entities) | {f"S{i}" for i in range(1, n_rubrics + 1)}
    if not isinstance(data, dict) or set(data) != want or \
            not all(isinstance(data[f"S{i}"], bool) for i in range(1, n_rubrics + 1)) or \
            not all(data[e] is None or isinstance(data[e], str) for e in entities):
        raise JudgeFailure("unparsable", f"expected a JSON object with keys {sorted(want)}, got {text[:120]!r}")
    return Verdict({e: data[e] or None for e in entities}, [data[f"S{i}"] for i in range(1, n_rubrics + 1)])
