"""The web-search environment: answer a question by searching and opening pages, then ``<answer>``.

XML format: ``<search>query</search>`` (or ``<search>{"query": ..., "k": 10}</search>``) and
``<open>url</open>`` (or ``<open>{"url": ..., "page": 2}</open>``), answered inline by
``<result>…</result>``. Hermes format: ``search`` and ``open`` tools in ``<tool_call>``.

Reward: exact match (``reward="em"``, default) or token F1 (``"f1"``) of the answer, normalised as in
Search-R1, after citation markers are removed. ``info`` at the end carries both, the pages the episode
retrieved (from the structured data of its tool calls), and the answer's citations split into valid
(retrieved in this episode) and invalid. The corpus, index and engine are shared by every instance and
fork in the process (`IndexCache`), so envs are cheap to make and to fork.

Question length on the generated world: ``hops=n`` or ``hops=[least, most]`` (default 2-4 hops, drawn
uniformly per question). One hop is answerable from a search snippet; each further hop needs a page opened.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from agentgym.env import EnvLimits
from agentgym.envs.web_search.index import IndexCache
from agentgym.envs.web_search.rewards import exact_match, grade_citations, retrieved_pages, strip_citations, token_f1
from agentgym.envs.web_search.search_tools import SearchTools
from agentgym.envs.web_search.sources import DEFAULT_HOPS, SearchSetup
from agentgym.tool_env import ToolEnv
from agentgym.tools import Tool

INSTRUCTIONS = ("Answer the question using the search engine. Search with <search>keywords</search>, read a "
                "page with <open>url or id</open>; results appear in <result></result>. Several people, "
                "places or organisations may share a name: check the details on the page. When you know, give "
                "only the name in <answer></answer>; you may cite pages you opened as [[n](url)].")


def score_answer(answer: str, task: dict[str, Any], tool_calls: list[dict[str, Any]], reward: str) -> tuple[float, dict]:
    """(reward, info) for a final answer given the episode's tool-call records."""
    golden = task.get("golden_answers") or [task.get("answer", "")]
    graded = strip_citations(answer)
    em, f1 = exact_match(graded, golden), token_f1(graded, golden)
    retrieved = retrieved_pages(tool_calls)
    info = {"em": em, "f1": f1, "retrieved": retrieved, "citations": grade_citations(answer, retrieved)}
    return (em if reward == "em" else f1), info


class WebSearchEnv(ToolEnv):
    can_fork: ClassVar[bool] = True  # fork() shares the corpus and index, copies the episode
    instructions = INSTRUCTIONS

    def __init__(self, tool_format: str = "xml", limits: EnvLimits | dict | None = None, render_mode: str | None = None,
                 corpus: str = "world", world_pages: int = 3000, world_seed: int = 0, background: str | None = None,
                 questions: str | None = None, index: str = "bm25", engine: dict | None = None, split: str = "train",
                 reward: str = "em", page_chars: int = 1500, index_cache: IndexCache | None = None,
                 tool_timeout_s: float = 30.0, hops: int | tuple[int, int] | list[int] = DEFAULT_HOPS):
        if reward not in ("em", "f1"):
            raise ValueError(f"reward must be 'em' or 'f1', got {reward!r}")
        self.reward_kind = reward
        self.sources = SearchSetup(corpus=corpus, world_pages=world_pages, world_seed=world_seed, background=background,
                                   questions=questions, index=index, engine=engine, split=split, index_cache=index_cache, hops=hops)
        self.search_tools = SearchTools(self.sources.engine, page_chars=page_chars)
        self.episode_calls: list[dict[str, Any]] = []
        super().__init__(self.search_tools.tools() + self.extra_tools(), tool_format=tool_format,
                         limits=limits or EnvLimits(max_turns=12, max_tokens_per_turn=256, max_tokens_per_episode=4096),
                         render_mode=render_mode, tool_timeout_s=tool_timeout_s)

    def extra_tools(self) -> list[Tool]:
        return []

    @property
    def expert(self) -> str | None:
        return "agentgym.envs.web_search.expert:web_search_expert" if self.tool_format == "xml" else None

    def sample_task(self, options: dict[str, Any] | None) -> dict[str, Any]:
        return self.sources.sample_question(self.np_random)

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        self.episode_calls = []
        return super()._reset(options)

    def score(self, answer: str) -> float:
        reward, self._last_score_info = score_answer(answer, self.task, self.episode_calls, self.reward_kind)
        return reward

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        obs, reward, terminated, info = super()._step(action)
        self.episode_calls += info.get("tool_calls", [])
        if terminated and "answer" in info:
            info.update(self._last_score_info)
        return obs, reward, terminated, info

    def fork(self) -> WebSearchEnv:
        """Shares the corpus, index, engine and tools; copies only the episode state."""
        clone = copy.copy(self)
        clone.task = copy.deepcopy(self.task)
        clone.episode_calls = list(self.episode_calls)
        clone._transcript = list(self._transcript)
        clone._np_random = copy.deepcopy(self._np_random)
        return clone
