"""The one error type for bad Grid flag expressions, with a caret under the fault."""
from __future__ import annotations

from typing import Optional

ACCEPTED = (
    "accepted: a number (32, 1e-2), a boolean (True/False), a string (bert, 'bert', \"bert\"), "
    "a list to sweep ([32, 64, 128]), range(start, stop, step), "
    "or a numpy distribution NAME(params..., n) such as uniform(1e-5, 1e-1, 3)"
)


class GridExpressionError(ValueError):
    """A flag's text is not a valid Grid expression.

    The message names the flag, shows the text with a caret under the fault and says what
    would be accepted instead.
    """

    def __init__(
        self,
        problem: str,
        *,
        text: str,
        position: Optional[int] = None,
        length: int = 1,
        flag: Optional[str] = None,
        hint: str = ACCEPTED,
    ) -> None:
        self.problem = problem
        self.text = text
        self.position = position
        self.length = max(1, length)
        self.flag = flag
        self.hint = hint
        super().__init__(self._render())

    def with_flag(self, flag: str) -> GridExpressionError:
        """The same error, naming `flag`."""
        return GridExpressionError(
            self.problem,
            text=self.text,
            position=self.position,
            length=self.length,
            flag=flag,
            hint=self.hint,
        )

    def _render(self) -> str:
        subject = f"flag '{self.flag}'" if self.flag else "expression"
        text, position, length = _window(self.text, self.position, self.length)
        lines = [f"{subject}: {self.problem}", f"    {text}"]
        if position is not None:
            lines.append("    " + " " * position + "^" * length)
        if self.hint:
            lines.append(f"  {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._render()


#: Longer texts are shown as a window around the fault, so that one error stays a few lines.
SHOWN_TEXT = 120


def _window(text: str, position: Optional[int], length: int) -> tuple:
    """(text shown, caret position, caret length): all of a short text, else the part at the fault."""
    if len(text) <= SHOWN_TEXT:
        return text, position, length
    start = max(0, (position or 0) - SHOWN_TEXT // 2)
    end = min(len(text), start + SHOWN_TEXT)
    shown = ("..." if start else "") + text[start:end] + ("..." if end < len(text) else "")
    if position is None:
        return shown, None, length
    caret = position - start + (3 if start else 0)
    return shown, caret, max(1, min(length, end - position))
