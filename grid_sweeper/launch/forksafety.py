"""Whether this process can be forked safely to run a job in the child."""
from __future__ import annotations

import sys
import threading
from typing import Optional

#: more Python threads than this besides the main thread make forking unsafe
MAX_THREADS_FOR_FORK = 4


def fork_unsafe_reason() -> Optional[str]:
    """Why forking this process is unsafe, or None when it is fine.

    A forked child inherits CUDA state it cannot use and copies of locks that other threads may hold;
    in those cases jobs are better started in a fresh interpreter.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_initialized():
                return "CUDA is already initialised in this process (torch)"
        except Exception:  # a broken torch must not stop the sweep
            pass
    current = threading.current_thread()
    others = [t for t in threading.enumerate() if t is not current and t.is_alive()]
    if len(others) > MAX_THREADS_FOR_FORK:
        return f"{len(others)} other threads are running in this process"
    return None
