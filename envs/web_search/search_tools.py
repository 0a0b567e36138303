"""The `search` and `open` tools over any `SearchEngine`.

Each returns a `ToolResult`: the sanitised text the model reads, and structured data for rewards —
``{"query", "results": [{"rank", "id", "url", "title"}]}`` for a search, ``{"opened": {"id", "url",
"title", "page", "pages"}}`` for an open. Pages are split into numbered pages of about `page_chars`
characters at sentence boundaries. Bad input (an empty or oversized query, an unknown address, a page
past the last) gets an error the model can read, or a note saying what was changed; never a crash.
"""

from __future__ import annotations

import re

from agentgym.envs.web_search.engine import SearchEngine, sanitize
from agentgym.tools import Tool, ToolError, ToolResult

MAX_QUERY_CHARS = 512
MAX_K = 20


def paginate(text: str, page_chars: int) -> list[str]:
    """Split at sentence (else whitespace) boundaries into chunks of at most ~`page_chars` characters."""
    if not text:
        return [""]
    pieces = re.split(r"(?<=[.!?\n])\s+", text)
    pages, cur = [], ""
    for piece in pieces:
        while len(piece) > page_chars:  # one enormous "sentence": cut it
            if cur:
                pages.append(cur)
                cur = ""
            pages.append(piece[:page_chars])
            piece = piece[page_chars:]
        if cur and len(cur) + 1 + len(piece) > page_chars:
            pages.append(cur)
            cur = piece
        else:
            cur = f"{cur} {piece}" if cur else piece
    if cur:
        pages.append(cur)
    return pages or [""]


class SearchTools:
    """Builds the two tools for an engine. Holds no episode state, so envs and their forks share it."""

    def __init__(self, engine: SearchEngine, page_chars: int = 1500, default_k: int = 5, max_k: int = MAX_K):
        self.engine, self.page_chars, self.default_k, self.max_k = engine, page_chars, default_k, max_k

    def tools(self) -> list[Tool]:
        st = self

        def search(query: str, k: int = 5) -> ToolResult:
            """Search the web and return ranked results with title, url and a snippet.

            Args:
                query: What to search for: a few keywords or a question.
                k: How many results to return (1-20).
            """
            return st.search(query, k)

        def open(url: str, page: int = 1) -> ToolResult:  # noqa: A001 - the tool's name is `open`
            """Open a page by its url (or id) from the search results and return its text, one page at a time.

            Args:
                url: The url or id of the page, exactly as a search result gives it.
                page: Which page of a long text to read, starting at 1.
            """
            return st.open(url, page)

        return [Tool(search), Tool(open)]

    def search(self, query: str, k: int = 5) -> ToolResult:
        notes = []
        q = " ".join(str(query).split())
        if not q:
            raise ToolError("The query is empty. Write a few words to search for.", "bad_arguments")
        if len(q) > MAX_QUERY_CHARS:
            notes.append(f"[your query was {len(q)} characters; only the first {MAX_QUERY_CHARS} were used]")
            q = q[:MAX_QUERY_CHARS]
        if k < 1 or k > self.max_k:
            notes.append(f"[k must be between 1 and {self.max_k}; used {min(max(k, 1), self.max_k)}]")
            k = min(max(k, 1), self.max_k)
        hits = self.engine.search(q, k)
        shown_q, _ = sanitize(q)
        lines, results, defused = [], [], False
        for rank, h in enumerate(hits, 1):
            title, d1 = sanitize(h.title, 300)
            snip, d2 = sanitize(h.snippet, 600)
            defused = defused or d1 or d2
            lines.append(f"[{rank}] {title}\n    url: {h.address}" + (f"\n    id: {h.id}" if h.url and h.id != h.url else "")
                         + f"\n    {snip}")
            results.append({"rank": rank, "id": h.id, "url": h.url, "title": h.title[:300]})
        head = f'Results for "{shown_q}":' if hits else f'No results for "{shown_q}". Try other words.'
        text = "\n".join(notes + [head] + lines)
        data = {"query": q, "engine": self.engine.name, "results": results}
        if defused:
            data["sanitized"] = True
        return ToolResult(text, data)

    def open(self, url: str, page: int = 1) -> ToolResult:
        address = str(url).strip()
        if not address:
            raise ToolError("The url is empty. Open a url or id from the search results.", "bad_arguments")
        doc = self.engine.open(address)
        pages = paginate(doc.text, self.page_chars)
        if page < 1 or page > len(pages):
            raise ToolError(f"{doc.title[:200]!r} has {len(pages)} page(s); page {page} does not exist. "
                            f"Use page 1 to {len(pages)}.", "bad_arguments")
        body, defused = sanitize(pages[page - 1])
        title, d2 = sanitize(doc.title, 300)
        more = (f"\n[page {page} of {len(pages)}; to read on, open it with page={page + 1}]"
                if page < len(pages) else "")
        cut = "\n[the page was larger than the size limit and was cut]" if doc.truncated and page == len(pages) else ""
        text = f"Title: {title}\nURL: {doc.address}\nPage {page} of {len(pages)}\n\n{body}{more}{cut}"
        data = {"opened": {"id": doc.id, "url": doc.url, "title": doc.title[:300], "page": page, "pages": len(pages)}}
        if defused or d2:
            data["sanitized"] = True
        return ToolResult(text, data)
