"""Test setup: run against the source tree when a developer build put _core there, else the install."""
import glob
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if glob.glob(os.path.join(ROOT, "runtime", "edgerun", "_core*.so")):
    for sub in ("runtime", "converter"):
        sys.path.insert(0, os.path.join(ROOT, sub))
# models/ (the PyTorch reference) is imported from the repository root.
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
