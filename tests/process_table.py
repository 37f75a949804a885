"""Reading the process table in tests: is a pid alive (zombies count as gone), wait for pids to go."""
import time
from typing import List


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pids: List[int], timeout: float = 5.0) -> List[int]:
    """The pids still alive (not zombies) after waiting up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]
