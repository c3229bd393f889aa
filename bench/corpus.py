"""Perplexity text for the benchmark, available offline.

Contract
    load_text() -> str      the benchmark text (≈465 KB of English prose with some code/grammar lines)
    describe() -> dict      {"name", "source", "python", "chars", "sha256"} — what was measured, for the JSON

Why this text: WikiText-2 (llama.cpp's convention) is not available here: no PyPI package in this
environment ships the WikiText-2 test split as plain data (searched the package list for "wikitext";
the hits are wikitext *parsers*). So the text is Python's own reference documentation, which is in the
standard library of every CPython: `pydoc_data.topics.topics`, a dict of 79 topic name -> text (the
language reference sections: "assert", "assignment", "class", ...). The topics are joined in sorted
key order with one blank line between them.

Caveats, stated in the results: the text depends on the CPython version (the sha256 and the Python
version are recorded beside every number), and it is technical English, so absolute perplexities are
not comparable with WikiText-2 numbers. Comparisons between engines and quantizations on the same
text and the same token chunks are valid. Nothing is cached in the repository and nothing is
downloaded.
"""
from __future__ import annotations

import hashlib
import platform

__all__ = ["load_text", "describe"]


def load_text() -> str:
    """The benchmark text: pydoc_data.topics.topics values, sorted by key, joined by a blank line."""
    from pydoc_data.topics import topics  # stdlib; present in every CPython install

    return "\n\n".join(topics[key].strip("\n") for key in sorted(topics)) + "\n"


def describe() -> dict:
    text = load_text()
    return {
        "name": "pydoc_data.topics",
        "source": "CPython stdlib pydoc_data.topics.topics, values joined in sorted key order",
        "python": platform.python_version(),
        "chars": len(text),
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(describe(), indent=2))
