"""Text embeddings for the collections pipeline: Voyage in AWS, a local hashing provider offline.

The embedder (documents) and search (queries) both use `embedder()`: one configuration, one client
(lambdas/collections/voyage_http.py, a small HTTP client for Voyage's embeddings API), so a query is
always embedded by the same model, request and decoding as the stored vectors it is compared with.
The voyageai SDK is not bundled: from 0.3 on it imports numpy (with OpenBLAS), Pillow, pydantic
and aiohttp when it loads, about 90 MB of asset and most of a second of cold start for one POST.
Tests hold the client to the SDK's request and vectors against one stand-in server.

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
from dataclasses import dataclass
from typing import Literal, Protocol

from lambdas.collections import names
from lambdas.collections.pipeline import api_key, local_providers_allowed
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


@per_container
def embedder() -> Embedder:
    """The configured embedder, for documents and queries alike; built once per container."""
    dimensions = env_int(names.ENV_EMBEDDING_DIMENSIONS, 1024)
    key = api_key(names.VOYAGE_API_KEY)
    if key:
        return VoyageHttpEmbedder(
            key,
            os.environ.get(names.ENV_EMBEDDING_MODEL, "voyage-3.5-lite"),
            dimensions,
            base_url=os.environ.get("VOYAGE_BASE_URL") or None,
            timeout=float(env_int("VOYAGE_TIMEOUT_SECONDS", 20)),
        )
    if local_providers_allowed():
        return LocalHashEmbedder(dimensions)
    raise MissingSetting(f"{names.VOYAGE_API_KEY} parameter is not set and local providers are not allowed")
