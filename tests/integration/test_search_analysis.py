"""The prism-analysis token filters on the real Elasticsearch, whose distribution lacks analysis-common."""

from __future__ import annotations

import secrets

from projections.stores.clients import Stores
from tests.conftest import NAMESPACE


def tokens(found: dict) -> list[str]:
    return [token["token"] for token in found["tokens"]]


async def test_filters_fold_lowercase_and_split_into_prefixes(stores: Stores):
    es = stores.elasticsearch

    folded = await es.indices.analyze(
        tokenizer="standard", filter=["prism_lowercase", "prism_folding"], text="José Widget"
    )
    assert tokens(folded) == ["jose", "widget"]

    prefixes = await es.indices.analyze(
        tokenizer="standard", filter=["prism_lowercase", "prism_folding", "prism_edge_ngram"], text="José Widget"
    )
    assert tokens(prefixes) == ["j", "jo", "jos", "jose", "w", "wi", "wid", "widg", "widge", "widget"]

    # Grams are capped at 20 characters: longer words are matched by their first 20.
    long_word = await es.indices.analyze(tokenizer="standard", filter=["prism_edge_ngram"], text="a" * 25)
    assert tokens(long_word)[-1] == "a" * 20


async def test_custom_analyzer_in_index_settings(stores: Stores):
    es = stores.elasticsearch
    index = f"{NAMESPACE}-analysis-{secrets.token_hex(4)}"
    await es.indices.create(
        index=index,
        settings={
            "analysis": {
                "filter": {"short_prefixes": {"type": "prism_edge_ngram", "min_gram": 2, "max_gram": 3}},
                "analyzer": {
                    "names": {"tokenizer": "standard", "filter": ["prism_lowercase", "prism_folding"]},
                    "name_prefixes": {
                        "tokenizer": "standard",
                        "filter": ["prism_lowercase", "prism_folding", "short_prefixes"],
                    },
                },
            }
        },
    )
    try:
        names = await es.indices.analyze(index=index, analyzer="names", text="ÉLODIE Müller")
        assert tokens(names) == ["elodie", "muller"]

        prefixes = await es.indices.analyze(index=index, analyzer="name_prefixes", text="Zoë")
        assert tokens(prefixes) == ["zo", "zoe"]
    finally:
        await es.indices.delete(index=index, ignore_unavailable=True)
