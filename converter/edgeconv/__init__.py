"""edgeconv — converts PyTorch / Hugging Face / GGUF checkpoints into .edge files.

    format.py    the .edge spec: constants, metadata types and encoders, table rows (shared by both sides)
    writer.py    the streaming, atomic writer (EdgeWriter; also `edgeconv.format.EdgeWriter`)
    reader.py    the validating mmap reader (EdgeFile; also `edgeconv.format.EdgeFile`)
    sources/     checkpoint readers: GGUF, HF folder (safetensors + tokenizer), PyTorch .pt/.pth
    archs/       one declarative module per model family, registered by HF architecture name
    recipes.py   quantization recipes (role -> dtype, fallbacks, budgeted upgrades, --tensor-type)
    calib.py     imatrix-style column importance from the reference forward (--calib)
    export.py    source -> plan -> dtypes -> quantize -> write
    cli.py       `edgeconv export | inspect | verify | recipes`
    quant/       the numpy quantizer (bit-exact with the C++ kernels)
"""


def __getattr__(name: str):
    """edgeconv.__version__ is edgerun's (one number for the wheel: pyproject.toml, compiled into _core)."""
    if name == "__version__":
        from edgerun import __version__

        return __version__
    raise AttributeError(f"module 'edgeconv' has no attribute {name!r}")
