"""Echo the lines that running jobs write to their log files, prefixed with `[job N]`."""
from __future__ import annotations

import sys
from typing import BinaryIO, Dict, List, Optional, TextIO, Tuple


def shorten(line: str, width: int) -> str:
    """Keep the last carriage-return segment (progress bars) and cut to `width` characters."""
    line = line.rstrip("\r\n").rsplit("\r", 1)[-1]
    if len(line) > width:
        return line[: max(width - 3, 1)] + "..."
    return line


class _Tail:
    """Reads what was appended to a file since the last call; the handle survives renames."""

    def __init__(self, path: str) -> None:
        try:
            self.file: Optional[BinaryIO] = open(path, "rb")  # closed in close()
        except OSError:
            self.file = None
        self.partial = b""

    def read_lines(self, final: bool) -> List[str]:
        if self.file is None:
            return []
        data = self.partial + self.file.read()
        lines = data.split(b"\n")
        self.partial = lines.pop()
        if final and self.partial:
            lines.append(self.partial)
            self.partial = b""
        return [line.decode("utf-8", "replace") for line in lines]

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class ConsoleEcho:
    """Follows the output files of running jobs and prints their new lines."""

    def __init__(self, stream: Optional[TextIO] = None, width: int = 200) -> None:
        self.stream = stream
        self.width = width
        self._jobs: Dict[int, Tuple[str, List[_Tail]]] = {}

    def add(self, key: int, label: str, paths: List[str]) -> None:
        self._jobs[key] = (label, [_Tail(p) for p in dict.fromkeys(paths)])

    def poll(self) -> None:
        for key in list(self._jobs):
            self._echo(key, final=False)

    def finish(self, key: int) -> None:
        if key in self._jobs:
            self._echo(key, final=True)
            for tail in self._jobs.pop(key)[1]:
                tail.close()

    def _echo(self, key: int, final: bool) -> None:
        label, tails = self._jobs[key]
        out = self.stream or sys.stdout
        for tail in tails:
            for line in tail.read_lines(final):
                text = shorten(line, self.width)
                if text.strip():
                    out.write(f"[{label}] {text}\n")
        try:
            out.flush()
        except (OSError, ValueError):
            pass
