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
        lines = [f"{subject}: {self.problem}", f"    {self.text}"]
        if self.position is not None:
            lines.append("    " + " " * self.position + "^" * self.length)
        if self.hint:
            lines.append(f"  {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._render()
