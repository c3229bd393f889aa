"""edgerun.train — fine-tune a small adapter on the frozen .edge model (docs/TRAINING.md): adapter files
(adapter.py), training data (data.py) and the loop over the C++ engine `_core.Trainer` (loop.py)."""

from .adapter import Adapter, base_checksum, read_adapter, write_adapter

__all__ = ["Adapter", "base_checksum", "read_adapter", "write_adapter", "train"]


def train(*args, **kwargs):
    """See edgerun.train.loop.train."""
    from .loop import train as _train

    return _train(*args, **kwargs)
