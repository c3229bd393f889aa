"""Built-in calibration text (`--calib stdlib`): docstrings of a fixed list of Python standard-library
modules, so calibration needs no file.

Contract
    stdlib_text() -> str        ~95 KB of English technical prose (24.6k SmolLM2 tokens); the same string on
                                every call for a given CPython build (fixed module list, members in sorted
                                name order, no randomness)
    describe() -> dict          {"name", "python", "chars", "sha256"}, recorded in export notes

What it holds: for each module of MODULES in list order, inspect.getdoc of the module, then of its public
functions and classes (names without a leading underscore, defined in that module, sorted by name),
each as "name\\n<docstring>\\n\\n". Docstrings under 40 characters, and any already used (inherited or
re-exported docs), are skipped.
A module contributes whole docstrings until it reaches PER_MODULE characters, so the text is spread
over 37 modules rather than dominated by the few with the longest docs (8192 SmolLM2 tokens cover the
first third, collections .. pathlib; the default 16384 about two thirds; --calib-tokens 25000 covers all).
calib_docs.txt is this text frozen (CPython 3.11.7): the second part of the default --calib builtin.

What it must never hold: the benchmark's evaluation text, pydoc_data.topics (bench/corpus.py; the
language-reference topics that `help("keyword")` shows). This module never imports pydoc or
pydoc_data, and builtins / keyword-level modules are not in the list; tests/test_gptq.py checks in a
fresh interpreter that pydoc_data.topics was not loaded, and that no 64-character run of the topics
text appears in this one.
The text depends on the CPython version (docstrings change between releases), like bench/corpus.py;
describe() gives the version and a hash to record next to results.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import platform

__all__ = ["MODULES", "PER_MODULE", "stdlib_text", "describe"]

MODULES = (
    "collections", "itertools", "functools", "os", "json", "re", "string", "textwrap", "datetime", "argparse",
    "logging", "pathlib", "subprocess", "threading", "unittest", "email", "http.client", "urllib.parse", "csv",
    "sqlite3", "decimal", "fractions", "statistics", "random", "heapq", "bisect", "shutil", "tempfile", "io",
    "contextlib", "difflib", "configparser", "base64", "hashlib", "socket", "uuid", "calendar",
)
PER_MODULE = 2400  # characters per module (whole docstrings; the last one may overshoot)


def _docs(modname: str):
    """(qualified name, docstring) of the module, then of its public functions/classes by sorted name."""
    mod = importlib.import_module(modname)
    yield modname, inspect.getdoc(mod)
    for name in sorted(vars(mod)):
        obj = vars(mod)[name]
        if name.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj) or inspect.isbuiltin(obj)):
            continue
        if getattr(obj, "__module__", None) != mod.__name__:  # re-exported from elsewhere
            continue
        yield f"{modname}.{name}", inspect.getdoc(obj)


def stdlib_text() -> str:
    """The calibration text (see the module doc)."""
    seen: set[str] = set()
    parts: list[str] = []
    for modname in MODULES:
        used = 0
        for qual, doc in _docs(modname):
            if used >= PER_MODULE:
                break
            doc = (doc or "").strip()
            if len(doc) < 40 or doc in seen:
                continue
            seen.add(doc)
            parts.append(f"{qual}\n{doc}\n\n")
            used += len(doc)
    return "".join(parts)


def describe() -> dict:
    text = stdlib_text()
    return {"name": "stdlib", "python": platform.python_version(), "chars": len(text),
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
