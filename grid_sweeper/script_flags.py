"""A script's command-line flags: which are swept, which pass through, and each job's argv.

`--flag value`, `--flag=value` and Hydra-style `key=value` are flags with a value; a flag followed
by another flag (or by
nothing) is a toggle, passed through unchanged and never swept; anything else passes through as
it stands. Each job is an argv list, never a shell string.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Union

from grid_sweeper.dimensions import Expression, Fixed
from grid_sweeper.errors import GridExpressionError
from grid_sweeper.expressions import KNOWN_FUNCTIONS, parse_expression

_FLAG = re.compile(r"--?[A-Za-z_][\w.\-]*\Z")
_FLAG_WITH_VALUE = re.compile(r"(--?[A-Za-z_][\w.\-]*)=(.*)\Z", re.S)
_KEY_VALUE = re.compile(r"([+~]{0,2}[A-Za-z_][\w.\-/@]*)=(.*)\Z", re.S)  # Hydra-style key=value


@dataclass(frozen=True)
class Passthrough:
    """A token handed to the script as it is: a positional argument or a toggle."""

    text: str
    toggle: bool = False


@dataclass(frozen=True)
class Option:
    """A flag with a value: `--name value` (joined=False) or `--name=value` (joined=True)."""

    flag: str
    text: str
    joined: bool
    expression: Expression

    @property
    def name(self) -> str:
        return self.flag.lstrip("-+~")

    @property
    def is_sweep(self) -> bool:
        return not isinstance(self.expression, Fixed)


Token = Union[Passthrough, Option]


_CALL = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\(")


def looks_like_sweep(text: str) -> bool:
    """A list, or a call of a known function (or of a near miss such as `unifrom`)."""
    if text.lstrip().startswith("["):
        return True
    call = _CALL.match(text)
    if not call:
        return False
    name = call.group(1)
    return name in KNOWN_FUNCTIONS or bool(difflib.get_close_matches(name, KNOWN_FUNCTIONS, n=1, cutoff=0.8))


def script_expression(text: str, flag: str) -> Expression:
    """A script flag's value: strict for what looks like a sweep, else text passed through as typed."""
    try:
        return parse_expression(text, flag=flag)
    except GridExpressionError:
        if looks_like_sweep(text):
            raise
        return Fixed(text)


def parse_script_args(args: Sequence[str], evaluate: bool = True) -> List[Token]:
    """Classify a script's arguments; raises GridExpressionError on a bad expression.

    With `evaluate=False` (strategy none) no value is parsed: every option is its text.
    A flag followed by `key=value` is a toggle: the `key=value` is a flag of its own (a value
    that contains `=` is given joined: `--cmd=a=b`).
    """
    def expression(text: str, name: str) -> Expression:
        return script_expression(text, name) if evaluate else Fixed(text)

    tokens: List[Token] = []
    i = 0
    while i < len(args):
        arg = args[i]
        joined = _FLAG_WITH_VALUE.match(arg) or _KEY_VALUE.match(arg)
        if joined:
            flag, text = joined.group(1), joined.group(2)
            tokens.append(Option(flag, text, True, expression(text, flag.lstrip("-+~"))))
        elif _FLAG.match(arg):
            following = args[i + 1] if i + 1 < len(args) else None
            if following is None or any(p.match(following) for p in (_FLAG, _FLAG_WITH_VALUE, _KEY_VALUE)):
                tokens.append(Passthrough(arg, toggle=True))
            else:
                tokens.append(Option(arg, following, False, expression(following, arg.lstrip("-"))))
                i += 1
        else:
            tokens.append(Passthrough(arg))
        i += 1
    return tokens


def format_value(value: Any) -> str:
    """A swept value as the script's own parser reads it back (floats in shortest round-trip form)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def plain_text(option: Option) -> str:
    """A plain value as typed (`1e-2` stays `1e-2`); a quoted string without its quotes."""
    value = option.expression.value  # type: ignore[union-attr]
    return value if isinstance(value, str) else option.text.strip()


def job_argv(tokens: Sequence[Token], values: Optional[dict] = None) -> List[str]:
    """The script's arguments for one job; `values` maps a swept flag's name to its value."""
    argv: List[str] = []
    for token in tokens:
        if isinstance(token, Passthrough):
            argv.append(token.text)
            continue
        if token.is_sweep:
            text = format_value((values or {})[token.name])
        else:
            text = plain_text(token)
        argv.extend([f"{token.flag}={text}"] if token.joined else [token.flag, text])
    return argv


def literal_argv(args: Sequence[str]) -> List[str]:
    """strategy none: the arguments exactly as typed."""
    return list(args)
