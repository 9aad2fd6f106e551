"""Where the project's data lives: recipes/, results/, env/, eval/ and the shared/ folder."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

# The repository root (repro is installed editable from a checkout). REPRO_HOME overrides it.
ROOT = Path(os.environ.get("REPRO_HOME", Path(__file__).resolve().parent.parent))
RECIPES = ROOT / "recipes"
SETTINGS = RECIPES / "settings"
METHODS_FILE = RECIPES / "methods.yaml"
PUBLISHED = ROOT / "results" / "published"
ENV = ROOT / "env"
LOCK_CPU = ENV / "lock-cpu.txt"
PAPER_ENV = ENV / "paper-environment.yaml"
EVAL = ROOT / "eval"
GENERATION = EVAL / "generation"


def cache_root() -> Path:
    """Where repro keeps what it can rebuild (models, judgments, ZeroEval data): $REPRO_CACHE,
    else ~/.cache/repro. Read at each call, so a test or a job can point it elsewhere."""
    return Path(os.environ.get("REPRO_CACHE", Path.home() / ".cache" / "repro"))


def shared_dir() -> Path | None:
    """The read-only shared/ folder (seed, reference notes, real data), if present.

    REPRO_SHARED overrides; otherwise ../shared beside the checkout, then ./shared inside it.
    """
    candidates = [os.environ.get("REPRO_SHARED"), ROOT.parent / "shared", ROOT / "shared"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def torch_extensions_dir() -> str:
    """Where DeepSpeed's JIT-built ops go: one folder per Python environment.

    DeepSpeed's CPU accelerator builds an op (shm comm) at every process group start into
    torch's extension cache, shared by every environment in a home (~/.cache/torch_extensions/
    py311_cpu). Two environments rebuild it over each other's (sources at other paths), which
    costs each run minutes on 2 cores; in its own folder it is built once and then loaded (0.5 s).
    Training and `repro bench train` both use it. The user's TORCH_EXTENSIONS_DIR wins."""
    if os.environ.get("TORCH_EXTENSIONS_DIR"):
        return os.environ["TORCH_EXTENSIONS_DIR"]
    venv = hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]
    return str(Path.home() / ".cache" / "torch_extensions" / f"repro-{venv}")
