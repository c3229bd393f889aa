#!/usr/bin/env bash
# bench/cuda/stage.sh — copies this worktree's files (tracked + untracked, not ignored) into DEST (default
# /work/main/.xfer_cuda, a folder .git/info/exclude ignores) so a device call can carry them.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
DEST=${1:-/work/main/.xfer_cuda}
rm -rf "$DEST"; mkdir -p "$DEST"
(cd "$SRC" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$DEST/")
du -sh "$DEST"
