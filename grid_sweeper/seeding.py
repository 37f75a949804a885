"""Seeds: one integer fixes every draw; each flag gets its own stream, keyed by its name."""
from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

#: Stream key of the random-search pick (flag streams use hashes of flag names).
PICK_STREAM = 0


def check_seed(seed: object) -> int:
    """`seed` if it can seed numpy's SeedSequence (a non-negative int), else a clear ValueError."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"the seed must be a non-negative int, got {seed!r}")
    return seed


def new_seed() -> int:
    """A fresh seed for a sweep that was given none (reported so it can be reproduced)."""
    return secrets.randbits(31)


def stream_key(name: str) -> int:
    """A stable 64-bit key for a flag name, the same in every process and Python version."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") | 1


def generator(seed: int, key: int, trial: Optional[int] = None) -> np.random.Generator:
    """numpy Generator for stream `key` (and trial, for per-trial draws) of `seed`."""
    import numpy as np

    entropy = [seed, key] if trial is None else [seed, key, trial + 1]
    return np.random.default_rng(np.random.SeedSequence(entropy))
