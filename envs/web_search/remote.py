"""Remote search engines over httpx: a SearXNG instance's JSON API, or any JSON endpoint.

Every call has a budget: per-request timeouts, a total deadline across retries, retries with backoff on
5xx, 429 (honouring ``Retry-After`` when it fits in the budget) and transport errors (tenacity), a size
cap on responses (bodies are streamed and reading stops at the cap), a bounded number of redirects, and
a cache of results with deterministic keys and atomic writes. Failures raise typed `RemoteError`s, which
the tool layer shows to the model as error observations. An API key is read from an environment variable
at call time, sent in a header to the engine's origin only, scrubbed from every error text, and never part
of a cache key or record. Pages the model opens must be on public addresses (`egress.EgressGuard`).
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

import httpx
import tenacity
from pydantic import BaseModel, ConfigDict, Field

from agentgym.envs.web_search.corpus import cache_dir
from agentgym.envs.web_search.egress import EgressGuard
from agentgym.envs.web_search.engine import Hit, Page
from agentgym.tools import ToolError


class RemoteError(ToolError):
    """A remote engine failed; `error_type` says how (as in `agentgym.trajectory.ErrorType`)."""

    def __init__(self, message: str, error_type: str = "infra_error", retryable: bool = False, wait_s: float = 0.0):
        super().__init__(message, error_type)
        self.retryable, self.wait_s = retryable, wait_s


class RemoteTimeout(RemoteError):
    def __init__(self, message: str):
        super().__init__(message, "timeout", retryable=True)


class ResponseTooLarge(RemoteError):
    def __init__(self, message: str):
        super().__init__(message, "output_limit")


class MalformedResponse(RemoteError):
    pass


class RemoteEngineConfig(BaseModel):
    """How to reach a remote engine. Unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["searxng", "json"] = "searxng"
    base_url: str = Field(description="SearXNG root (…/search is appended) or the full JSON endpoint url.")
    timeout_s: float = Field(default=10.0, gt=0, description="Per-request connect/read timeout.")
    budget_s: float = Field(default=20.0, gt=0, description="Total time for one tool call, retries included.")
    retries: int = Field(default=3, ge=1, description="Attempts per call.")
    max_response_bytes: int = Field(default=2_000_000, ge=1024, description="Search responses above this fail.")
    max_page_bytes: int = Field(default=2_000_000, ge=1024, description="Opened pages are cut at this size.")
    max_redirects: int = Field(default=5, ge=0)
    api_key_env: str | None = Field(default=None, description="Name of the environment variable holding the key.")
    api_key_header: str = "Authorization"
    api_key_prefix: str = "Bearer "
    query_param: str = "q"
    count_param: str | None = Field(default=None, description="Parameter for the number of results (json kind).")
    results_field: str = "results"
    title_field: str = "title"
    url_field: str = "url"
    snippet_field: str = "content"
    cache: bool = True
    open_allow_hosts: list[str] = Field(default_factory=list, description="Hosts `open` may reach although they "
                                        "resolve to loopback or private addresses (an intranet wiki, a local test "
                                        "server); every other page must be on a public address.")


class _Text(HTMLParser):
    """Visible text of an HTML page (scripts and styles dropped)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style", "noscript"):
            self._skip += 1
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript") and self._skip:
            self._skip -= 1
        if tag in ("p", "div", "br", "li", "h1", "h2", "h3", "tr"):
            self.parts.append("\n")
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title and not self.title:
            self.title = data.strip()
        if not self._skip:
            self.parts.append(data)


def html_to_text(raw: str) -> tuple[str, str]:
    parser = _Text()
    parser.feed(raw)
    parser.close()
    text = "".join(parser.parts)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return parser.title, "\n".join(line for line in lines if line)


class RemoteEngine:
    """`search` and `open` against a remote engine described by a `RemoteEngineConfig`."""

    def __init__(self, config: RemoteEngineConfig | dict, cache_root: str | Path | None = None):
        self.config = config if isinstance(config, RemoteEngineConfig) else RemoteEngineConfig(**config)
        self.name = self.config.kind
        self.cache_root = Path(cache_root) if cache_root else cache_dir() / "remote"
        guard = EgressGuard(self.config.base_url, self.config.api_key_header, self.config.open_allow_hosts)
        self.client = httpx.Client(timeout=httpx.Timeout(self.config.timeout_s), follow_redirects=True,
                                   max_redirects=self.config.max_redirects, event_hooks={"request": [guard]})

    def close(self) -> None:
        self.client.close()

    # ---- secrets ----------------------------------------------------------------------------------
    def _key(self) -> str | None:
        return os.environ.get(self.config.api_key_env) if self.config.api_key_env else None

    def _headers(self) -> dict[str, str]:
        key = self._key()
        return {self.config.api_key_header: self.config.api_key_prefix + key} if key else {}

    def scrub(self, text: str) -> str:
        key = self._key()
        return text.replace(key, "***") if key else text

    # ---- the calls --------------------------------------------------------------------------------
    def search(self, query: str, k: int) -> list[Hit]:
        cfg = self.config
        cache_key = hashlib.sha256(json.dumps([cfg.kind, cfg.base_url, query, k], sort_keys=True).encode()).hexdigest()
        cached = self._cache_read(cache_key)
        if cached is not None:
            return [Hit(**h) for h in cached]
        params: dict[str, Any] = {cfg.query_param: query}
        url = cfg.base_url
        if cfg.kind == "searxng":
            url, params["format"] = cfg.base_url.rstrip("/") + "/search", "json"
        elif cfg.count_param:
            params[cfg.count_param] = k
        body, _, _ = self._fetch(url, params, cfg.max_response_bytes, truncate=False)
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise MalformedResponse(f"{self.name} returned malformed JSON ({type(e).__name__}: {str(e)[:120]})") from None
        rows = payload.get(cfg.results_field) if isinstance(payload, dict) else payload
        if not isinstance(rows, list):
            raise MalformedResponse(f"{self.name} response has no list {cfg.results_field!r}")
        hits = []
        for row in rows[:k]:
            if not isinstance(row, dict) or not isinstance(row.get(cfg.url_field), str):
                continue  # a result without a url cannot be opened or cited
            hits.append(Hit(id=row[cfg.url_field], title=self.scrub(str(row.get(cfg.title_field, ""))[:300]),
                            snippet=self.scrub(str(row.get(cfg.snippet_field, ""))[:1000]), url=row[cfg.url_field]))
        self._cache_write(cache_key, [h.__dict__ for h in hits])
        return hits

    def open(self, address: str) -> Page:
        if not address.startswith(("http://", "https://")):
            raise RemoteError(f"Cannot open {address[:200]!r}: only http(s) urls can be opened.", "tool_error")
        body, content_type, truncated = self._fetch(address, {}, self.config.max_page_bytes, truncate=True)
        raw = body.decode("utf-8", errors="replace")
        title, text = html_to_text(raw) if "html" in content_type or raw.lstrip().startswith("<") else ("", raw)
        return Page(id=address, title=self.scrub(html.unescape(title)) or address, text=self.scrub(text), url=address,
                    truncated=truncated)

    def _fetch(self, url: str, params: dict[str, Any], cap: int, truncate: bool) -> tuple[bytes, str, bool]:
        cfg = self.config
        deadline = time.monotonic() + cfg.budget_s

        def wait(state: tenacity.RetryCallState) -> float:
            err = state.outcome.exception() if state.outcome else None
            backoff = min(4.0, 0.25 * 2 ** (state.attempt_number - 1))
            return max(backoff, getattr(err, "wait_s", 0.0))

        def give_up_if_past_budget(state: tenacity.RetryCallState) -> bool:
            err = state.outcome.exception() if state.outcome else None
            return time.monotonic() + wait(state) >= deadline

        retrying = tenacity.Retrying(
            stop=tenacity.stop_any(tenacity.stop_after_attempt(cfg.retries), give_up_if_past_budget),
            wait=wait, retry=tenacity.retry_if_exception(lambda e: getattr(e, "retryable", False)), reraise=True)
        try:
            return retrying(self._once, url, params, cap, truncate, deadline)
        except RemoteError as e:
            e.args = (self.scrub(str(e.args[0])),)
            raise

    def _once(self, url: str, params: dict[str, Any], cap: int, truncate: bool, deadline: float) -> tuple[bytes, str, bool]:
        where = url.split("?")[0][:200]
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RemoteTimeout(f"{self.name}: no time left in the call's budget of {self.config.budget_s:g} s")
        timeout = httpx.Timeout(min(self.config.timeout_s, remaining))
        try:
            with self.client.stream("GET", url, params=params, headers=self._headers(), timeout=timeout) as r:
                if r.status_code == 429:
                    retry_after = _retry_after(r.headers.get("retry-after"))
                    raise RemoteError(f"{self.name} is rate-limiting requests (429, Retry-After {retry_after:g} s)",
                                      retryable=True, wait_s=retry_after)
                if r.status_code >= 500:
                    raise RemoteError(f"{self.name} failed with HTTP {r.status_code} at {where}", retryable=True)
                if r.status_code >= 400:
                    raise RemoteError(f"{self.name} refused the request: HTTP {r.status_code} at {where}", "tool_error")
                declared = int(r.headers.get("content-length") or 0)
                if declared > cap and not truncate:
                    raise ResponseTooLarge(f"{self.name} response is {declared} bytes; the cap is {cap}")
                chunks, size, cut = [], 0, False
                for chunk in r.iter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > cap:
                        if not truncate:
                            raise ResponseTooLarge(f"{self.name} response exceeded the cap of {cap} bytes")
                        cut = True
                        break
                    if time.monotonic() > deadline:
                        raise RemoteTimeout(f"{where} sent its body too slowly: over the {self.config.budget_s:g} s budget")
                return b"".join(chunks)[:cap], r.headers.get("content-type", ""), cut
        except httpx.TooManyRedirects:
            raise RemoteError(f"{where} redirected more than {self.config.max_redirects} times", "tool_error") from None
        except httpx.TimeoutException as e:
            raise RemoteTimeout(f"{where} timed out ({type(e).__name__}) after {self.config.timeout_s:g} s") from None
        except httpx.HTTPError as e:
            raise RemoteError(f"{where}: {type(e).__name__}: {str(e)[:200]}", retryable=True) from None

    # ---- result cache -----------------------------------------------------------------------------
    def _cache_path(self, key: str) -> Path:
        return self.cache_root / self.name / key[:2] / f"{key}.json"

    def _cache_read(self, key: str) -> list[dict] | None:
        if not self.config.cache:
            return None
        try:
            return json.loads(self._cache_path(key).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def _cache_write(self, key: str, value: list[dict]) -> None:
        if not self.config.cache:
            return
        path = self._cache_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(value, f)
        os.replace(tmp, path)


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 1.0
    except ValueError:
        return 1.0
