"""Text embeddings for the collections pipeline: Voyage in AWS, a local hashing provider offline.

The embedder (documents) uses `embedder()`, Voyage through its SDK; search (queries) uses
`query_embedder()`, the same provider, model and dimensions through a small HTTP client
(lambdas/collections/voyage_http.py) that keeps the SDK's import off search's first answer. One
configuration builds both, so a query is always embedded by the same model as the stored vectors
it is compared with, and tests hold both clients to the same vectors.

The `local` provider (model name `local-hash-v1`) is feature hashing: lower-cased word unigrams
and adjacent bigrams are hashed (blake2b) into `dimensions` buckets with a hash-derived sign,
weighted 1 + log(count), then L2-normalized. Cosine similarity is then a weighted word-overlap
score: it finds items that share words with the query (colours, categories, headline words) and
nothing else: no synonyms, no other languages, no meaning. It exists so the pipeline and search
work end to end without a network or a key; it is not a substitute for a real model.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from lambdas.collections import names
from lambdas.collections.pipeline import RetryableError, api_key, local_providers_allowed
from lambdas.collections.voyage_http import VoyageHttpEmbedder
from lambdas.common.containers import per_container
from lambdas.common.settings import MissingSetting, env_int

LOCAL_MODEL = "local-hash-v1"
InputType = Literal["document", "query"]
_WORD = re.compile(r"[a-z0-9]+")


class Embedder(Protocol):
    provider: str
    model: str
    dimensions: int

    def embed(self, texts: list[str], input_type: InputType) -> list[list[float]]: ...


@dataclass
class LocalHashEmbedder:
    dimensions: int
    provider: str = "local"
    model: str = LOCAL_MODEL

    def embed(self, texts: list[str], input_type: InputType) -> list[list[float]]:
        return [hash_embed(text, self.dimensions) for text in texts]


def hash_embed(text: str, dimensions: int) -> list[float]:
    words = _WORD.findall(text.lower())
    features = Counter(words + [f"{a} {b}" for a, b in itertools.pairwise(words)])
    vector = [0.0] * dimensions
    for feature, count in features.items():
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "little") % dimensions
        sign = 1.0 if digest[4] & 1 else -1.0
        vector[bucket] += sign * (1.0 + math.log(count))
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        # An empty text still needs a valid unit vector for cosine distance.
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]


class VoyageEmbedder:
    provider = "voyage"

    def __init__(self, key: str, model: str, dimensions: int) -> None:
        import voyageai  # heavy (numpy, tokenizers): only in functions that embed with Voyage

        # max_retries=0: Lambda's own retries (with their backoff) handle throttling.
        self._client = voyageai.Client(
            api_key=key,
            max_retries=0,
            timeout=float(env_int("VOYAGE_TIMEOUT_SECONDS", 20)),
            base_url=os.environ.get("VOYAGE_BASE_URL") or None,
        )
        self.model = model
        self.dimensions = dimensions

    def embed(self, texts: list[str], input_type: InputType) -> list[list[float]]:
        from voyageai import error

        try:
            result: Any = self._client.embed(
                texts, model=self.model, input_type=input_type, output_dimension=self.dimensions
            )
        except (
            error.RateLimitError,
            error.ServiceUnavailableError,
            error.ServerError,
            error.Timeout,
            error.APIConnectionError,
            error.TryAgain,
        ) as exc:
            raise RetryableError(f"voyage: {type(exc).__name__}: {exc}") from exc
        except error.APIError as exc:
            # APIError is also the SDK's catch-all for unexpected 4xx, which retrying cannot fix.
            if exc.http_status is None or exc.http_status >= 500:
                raise RetryableError(f"voyage: {type(exc).__name__}: {exc}") from exc
            raise
        vectors = [list(map(float, v)) for v in result.embeddings]
        if len(vectors) != len(texts) or any(len(v) != self.dimensions for v in vectors):
            raise RetryableError(f"voyage returned {len(vectors)} vectors of unexpected size")
        return vectors


def _configured(voyage: Callable[[str, str, int], Embedder]) -> Embedder:
    dimensions = env_int(names.ENV_EMBEDDING_DIMENSIONS, 1024)
    key = api_key(names.VOYAGE_API_KEY)
    if key:
        return voyage(key, os.environ.get(names.ENV_EMBEDDING_MODEL, "voyage-3.5-lite"), dimensions)
    if local_providers_allowed():
        return LocalHashEmbedder(dimensions)
    raise MissingSetting(f"{names.VOYAGE_API_KEY} parameter is not set and local providers are not allowed")


def _voyage_http(key: str, model: str, dimensions: int) -> Embedder:
    return VoyageHttpEmbedder(
        key,
        model,
        dimensions,
        base_url=os.environ.get("VOYAGE_BASE_URL") or None,
        timeout=float(env_int("VOYAGE_TIMEOUT_SECONDS", 20)),
    )


@per_container
def embedder() -> Embedder:
    """The configured embedder for documents (Voyage through its SDK), built once per container."""
    return _configured(VoyageEmbedder)


@per_container
def query_embedder() -> Embedder:
    """The same provider and model for search queries, Voyage without its SDK; once per container."""
    return _configured(_voyage_http)
