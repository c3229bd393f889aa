"""edgeconv — converts PyTorch / Hugging Face / GGUF checkpoints into .edge files."""

__version__ = "0.1.0"
