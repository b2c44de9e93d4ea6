"""Text to vectors: all-MiniLM-L6-v2 through fastembed, from a local directory only.

The model (DESIGN §5) reads at most 256 word pieces and was trained on that length.
A longer text — most résumés, many job descriptions — is cut into windows of
``window`` word pieces that overlap by ``overlap``; each window is embedded and the
text's vector is their mean weighted by window length, normalised again. Nothing is
truncated away unless ``max_windows`` says so: on two cores the model costs about
0.25 ms per word piece (245 pieces: 60 ms; 1,225 pieces in 7 windows: 305 ms).

``embed_sync`` does the work on the calling thread. ``embed`` runs it on the
embedder's one worker thread, and requests that arrive while the thread is busy
are embedded together in one batch, so handlers in flight share ONNX calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
from fastembed import TextEmbedding
from tokenizers import Tokenizer

from shared.settings import Settings

from . import model_files

__all__ = ["DIM", "Embedder", "Embeddings", "windows"]

Embeddings = npt.NDArray[np.float32]  # one L2-normalised row per text

DIM = 384
# [CLS] and [SEP] take two of the model's 256 positions
_MAX_PIECES = 256 - 2
# texts handed to one ONNX run at most; fastembed pads a batch to its longest text,
# so texts are sorted by length before batching
_BATCH = 32
# requests coalesced into one worker-thread call at most (texts)
_COALESCE = 256


def windows(pieces: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, end)`` word-piece spans covering ``pieces`` in windows of ``window``
    overlapping by ``overlap``; the last window ends at the text's end."""
    if not 0 <= overlap < window:
        raise ValueError("overlap must be at least 0 and less than the window")
    if pieces <= window:
        return [(0, pieces)]
    spans: list[tuple[int, int]] = []
    start = 0
    while start + window < pieces:
        spans.append((start, start + window))
        start += window - overlap
    spans.append((max(pieces - window, 0), pieces))
    return spans


class Embedder:
    """all-MiniLM-L6-v2, 384-d, L2-normalised vectors."""

    dim = DIM

    def __init__(
        self,
        model_dir: Path,
        *,
        window: int = 200,
        overlap: int = 40,
        max_windows: int | None = None,
        threads: int | None = None,
    ) -> None:
        if not 0 < window <= _MAX_PIECES:
            raise ValueError(f"window must be 1..{_MAX_PIECES} word pieces")
        if max_windows is not None and max_windows < 1:
            raise ValueError("max_windows must be at least 1")
        self._window = window
        self._overlap = overlap
        self._max_windows = max_windows
        # local_files_only: fastembed never asks the hub; specific_model_path is the
        # model; cache_dir keeps fastembed from making a cache dir of its own in /tmp
        self._model = TextEmbedding(
            model_name=model_files.MODEL_NAME,
            specific_model_path=str(model_dir),
            cache_dir=str(model_dir),
            local_files_only=True,
            threads=threads,
        )
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="herald-embed")
        self._waiting: list[tuple[list[str], asyncio.Future[Embeddings]]] = []
        self._drainer: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder:
        """The packaged model (assembled under the data dir if need be), or the
        directory ``HERALD_EMBEDDING_MODEL_DIR`` names."""
        return cls(model_files.model_dir(settings))

    def embed_sync(self, texts: Sequence[str]) -> Embeddings:
        """One row per text, in order; blocks while the model runs."""
        if isinstance(texts, str):
            raise TypeError("embed_sync takes a sequence of texts, not one string")
        chunks: list[str] = []
        weights: list[int] = []
        owners: list[int] = []
        for i, text in enumerate(texts):
            for chunk, pieces in self._split(text):
                chunks.append(chunk)
                weights.append(pieces)
                owners.append(i)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        if not chunks:
            return out
        vectors = self._run(chunks, weights)
        np.add.at(out, np.array(owners), vectors * np.array(weights, dtype=np.float32)[:, None])
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), np.float32(1e-12))
        return out

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """``embed_sync`` on the embedder's thread, batched with concurrent calls."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one string")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Embeddings] = loop.create_future()
        self._waiting.append((list(texts), done))
        if self._drainer is None or self._drainer.done() or self._drainer.get_loop() is not loop:
            self._drainer = loop.create_task(self._drain())
        return await done

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)

    # -- internals

    def _split(self, text: str) -> list[tuple[str, int]]:
        """The text's windows as (text, word pieces); a short text is itself."""
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        pieces = len(encoding.ids)
        if pieces <= _MAX_PIECES:
            return [(text, max(pieces, 1))]
        offsets = encoding.offsets
        spans = windows(pieces, self._window, self._overlap)[: self._max_windows]
        return [
            (text[offsets[start][0] : offsets[end - 1][1]], end - start) for start, end in spans
        ]

    def _run(self, chunks: list[str], pieces: list[int]) -> Embeddings:
        order = np.argsort(np.array(pieces), kind="stable")
        embedded = self._model.embed([chunks[i] for i in order], batch_size=_BATCH)
        vectors = np.empty((len(chunks), DIM), dtype=np.float32)
        vectors[order] = np.stack(list(embedded)).astype(np.float32, copy=False)
        return vectors

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        batch: list[tuple[list[str], asyncio.Future[Embeddings]]] = []
        try:
            while self._waiting:
                batch = _take(self._waiting, _COALESCE)
                texts = [t for group, _ in batch for t in group]
                try:
                    vectors = await loop.run_in_executor(self._thread, self.embed_sync, texts)
                except Exception as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    batch = []
                    continue
                at = 0
                for group, done in batch:
                    if not done.done():
                        done.set_result(vectors[at : at + len(group)])
                    at += len(group)
                batch = []
        finally:  # cancelled (the loop is going away): nobody is left hanging
            for _, done in [*batch, *self._waiting]:
                done.cancel()
            self._waiting.clear()


def _take(
    waiting: list[tuple[list[str], asyncio.Future[Embeddings]]], limit: int
) -> list[tuple[list[str], asyncio.Future[Embeddings]]]:
    taken, size = 0, 0
    while taken < len(waiting) and (taken == 0 or size + len(waiting[taken][0]) <= limit):
        size += len(waiting[taken][0])
        taken += 1
    batch = waiting[:taken]
    del waiting[:taken]
    return batch
