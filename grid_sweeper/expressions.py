"""Grid flag expressions: text in, a plain value or an (unseeded) sweep dimension out.

A small hand-written tokenizer and recursive-descent parser. Function names come from an
allowlist (`range`, the distributions table); user text is never evaluated.
"""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from grid_sweeper import distributions
from grid_sweeper.dimensions import Choices, Distribution, Expression, Fixed, RangeValues
from grid_sweeper.errors import GridExpressionError

KNOWN_FUNCTIONS: Tuple[str, ...] = ("range", *sorted(distributions.DISTRIBUTIONS))

_PUNCTUATION = {"[": "LBRACK", "]": "RBRACK", "(": "LPAREN", ")": "RPAREN", ",": "COMMA", "=": "EQ"}
_WORD_END = set(_PUNCTUATION) | {"'", '"'}
_INT = re.compile(r"[+-]?\d+\Z")
_FLOAT = re.compile(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?\Z")
_SPECIAL_FLOATS = {"inf": float("inf"), "+inf": float("inf"), "-inf": float("-inf"), "nan": float("nan")}
_WORDS = {"true": True, "false": False, "none": None, "null": None}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}
#: Lists nest at most this deep: deeper text is refused before it can exhaust Python's stack.
MAX_NESTING = 32
#: A distribution draws at most this many values (they are drawn together and kept in memory).
MAX_COUNT = 1_000_000


@dataclass(frozen=True)
class Token:
    kind: str  # WORD, STR, LBRACK, RBRACK, LPAREN, RPAREN, COMMA, EQ, END
    text: str
    position: int
    value: Any = None

    @property
    def width(self) -> int:
        return max(1, len(self.text))


def scalar(word: str) -> Any:
    """An unquoted word as int, float, bool, None or (otherwise) the string itself."""
    if _INT.match(word):
        try:
            return int(word)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            return word
    if _FLOAT.match(word):
        return float(word)
    lowered = word.lower()
    if lowered in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[lowered]
    if lowered in _WORDS and word in (lowered, lowered.capitalize()):
        return _WORDS[lowered]
    return word


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokenize()
        self.index = 0

    # -- errors -------------------------------------------------------------------------------
    def fail(self, problem: str, position: int, length: int = 1, hint: Optional[str] = None) -> None:
        kwargs = {} if hint is None else {"hint": hint}
        raise GridExpressionError(problem, text=self.text, position=position, length=length, **kwargs)

    # -- tokens -------------------------------------------------------------------------------
    def _tokenize(self) -> List[Token]:
        text, tokens, i = self.text, [], 0
        while i < len(text):
            char = text[i]
            if char.isspace():
                i += 1
            elif char in _PUNCTUATION:
                tokens.append(Token(_PUNCTUATION[char], char, i))
                i += 1
            elif char in "'\"":
                tokens.append(self._quoted(i))
                i += len(tokens[-1].text)
            else:
                start = i
                while i < len(text) and not text[i].isspace() and text[i] not in _WORD_END:
                    i += 1
                tokens.append(Token("WORD", text[start:i], start))
        tokens.append(Token("END", "", len(text)))
        return tokens

    def _quoted(self, start: int) -> Token:
        quote, text, chars, i = self.text[start], self.text, [], start + 1
        while i < len(text):
            char = text[i]
            if char == "\\" and i + 1 < len(text):
                following = text[i + 1]
                chars.append(_ESCAPES.get(following, "\\" + following))
                i += 2
            elif char == quote:
                return Token("STR", text[start : i + 1], start, "".join(chars))
            else:
                chars.append(char)
                i += 1
        self.fail(f"unterminated string: missing closing {quote}", start, len(text) - start,
                  hint=f"close the string with {quote}, or escape a quote inside it as \\{quote}")
        raise AssertionError  # unreachable

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.peek()
        self.index += 1
        return token

    def expect_end(self, what: str) -> None:
        token = self.peek()
        if token.kind != "END":
            self.fail(f"unexpected {token.text!r} after {what}", token.position,
                      len(self.text.rstrip()) - token.position)

    # -- grammar ------------------------------------------------------------------------------
    def expression(self) -> Expression:
        first = self.peek()
        if first.kind == "END":
            return Fixed("")
        if first.kind == "LBRACK":
            values = self.list_value(allow_empty=False)
            self.expect_end("the list")
            return Choices(tuple(values))
        if first.kind == "WORD" and self.peek(1).kind == "LPAREN":  # `range (1, 3)` too
            return self.call()
        if first.kind == "STR" and self.peek(1).kind == "END":
            return Fixed(first.value)
        return self.plain_text()

    def plain_text(self) -> Fixed:
        """Text that is no list or call: a scalar, or a string kept as typed."""
        for token in self.tokens:
            if token.kind in ("LBRACK", "RBRACK", "LPAREN", "RPAREN", "STR"):
                if token.kind == "STR":
                    self.fail("a quoted string must be the whole value", token.position,
                              len(token.text), hint="quote the whole value, e.g. 'a b'")
                self.fail(f"unbalanced {token.text!r}", token.position)
        stripped = self.text.strip()
        return Fixed(scalar(stripped))

    def list_value(self, allow_empty: bool, depth: int = 1) -> List[Any]:
        opening = self.take()
        if depth > MAX_NESTING:
            self.fail(f"lists nested deeper than {MAX_NESTING} levels", opening.position,
                      hint=f"nest lists at most {MAX_NESTING} deep, e.g. [[1, 2], [3]]")
        values: List[Any] = []
        expecting_value = True
        while True:
            token = self.peek()
            if token.kind == "RBRACK":
                self.take()
                if not values and not allow_empty:
                    self.fail("empty list: nothing to sweep", opening.position,
                              token.position - opening.position + 1,
                              hint="give at least one value, e.g. [32, 64, 128]")
                return values
            if token.kind == "END":
                self.fail("unbalanced '[': missing ']'", opening.position,
                          hint="close the list with ], e.g. [32, 64, 128]")
            if token.kind == "COMMA":
                if expecting_value:
                    self.fail("missing value before ','", token.position)
                self.take()
                expecting_value = True
                continue
            values.append(self.element(depth))
            expecting_value = False

    def element(self, depth: int = 0) -> Any:
        token = self.peek()
        if token.kind == "LBRACK":
            return self.list_value(allow_empty=True, depth=depth + 1)
        if token.kind == "STR":
            return self.take().value
        if token.kind == "WORD":
            if self.peek(1).kind == "LPAREN":
                self.fail("a function call cannot be a list element", token.position, len(token.text),
                          hint="a list holds plain values: numbers, booleans, strings, lists")
            return scalar(self.take().text)
        self.fail(f"unexpected {token.text!r}", token.position)
        raise AssertionError  # unreachable

    def call(self) -> Expression:
        name_token = self.take()
        if name_token.text != "range" and name_token.text not in distributions.DISTRIBUTIONS:
            # Reject an unknown name before reading its arguments: `__import__('os').system('x')`
            # is an unknown function, not a syntax error further on.
            _unknown_function(name_token.text, self.text, (name_token.position, len(name_token.text)))
        opening = self.take()
        args: List[Tuple[Any, Token]] = []
        kwargs: Dict[str, Tuple[Any, Token]] = {}
        while True:
            token = self.peek()
            if token.kind == "RPAREN":
                closing = self.take()
                break
            if token.kind == "END":
                self.fail("unbalanced '(': missing ')'", opening.position,
                          hint=f"close the call with ), e.g. {_example(name_token.text)}")
            if token.kind == "COMMA":
                self.fail("missing argument before ','", token.position)
            if token.kind == "WORD" and self.peek(1).kind == "EQ":
                key = self.take()
                self.take()
                if key.text in kwargs:
                    self.fail(f"argument {key.text!r} given twice", key.position, len(key.text))
                kwargs[key.text] = (self.argument(), key)
            else:
                if kwargs:
                    self.fail("positional argument after a keyword argument", token.position,
                              token.width)
                args.append((self.argument(), token))
            separator = self.peek()
            if separator.kind == "COMMA":
                self.take()
            elif separator.kind == "END":
                self.fail("unbalanced '(': missing ')'", opening.position,
                          hint=f"close the call with ), e.g. {_example(name_token.text)}")
            elif separator.kind != "RPAREN":
                self.fail(f"expected ',' or ')' but found {separator.text or 'the end'!r}",
                          separator.position)
        self.expect_end("the closing ')'")
        span = (name_token.position, closing.position + 1 - name_token.position)
        return build_call(name_token.text, args, kwargs, self.text, span)

    def argument(self) -> Any:
        token = self.peek()
        if token.kind == "WORD" and self.peek(1).kind == "LPAREN":
            self.fail("nested function calls are not supported", token.position, len(token.text))
        if token.kind in ("WORD", "STR", "LBRACK"):
            return self.element()
        self.fail(f"expected an argument but found {token.text or 'the end'!r}", token.position)
        raise AssertionError  # unreachable


def _example(name: str) -> str:
    if name == "range":
        return "range(1, 10, 2)"
    info = distributions.DISTRIBUTIONS.get(name)
    return info.signature if info else "uniform(1e-5, 1e-1, 3)"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def build_call(
    name: str,
    args: List[Tuple[Any, Any]],
    kwargs: Dict[str, Tuple[Any, Any]],
    text: str,
    span: Tuple[int, int],
) -> Expression:
    """Check a function call and make its dimension. Arguments come as (value, token-or-None)."""
    checker = _CallChecker(name, text, span)
    if name == "range":
        return checker.range(args, kwargs)
    if name in distributions.DISTRIBUTIONS:
        return checker.distribution(args, kwargs)
    _unknown_function(name, text, span)
    raise AssertionError  # unreachable


def _unknown_function(name: str, text: str, span: Tuple[int, int]) -> None:
    close = difflib.get_close_matches(name, KNOWN_FUNCTIONS, n=1)
    suggestion = f"did you mean '{close[0]}'? " if close else ""
    _CallChecker(name, text, span).fail(f"unknown function '{name}'", None, hint=(
        f"{suggestion}known functions: range and the numpy distributions "
        f"({', '.join(KNOWN_FUNCTIONS[1:])})"))


class _CallChecker:
    def __init__(self, name: str, text: str, span: Tuple[int, int]) -> None:
        self.name, self.text, self.span = name, text, span

    def fail(self, problem: str, token: Optional[Token], hint: Optional[str] = None) -> None:
        if isinstance(token, Token):
            position, length = token.position, token.width
        elif self.text:
            position, length = self.span
            if problem.startswith("unknown function"):
                length = len(self.name)
        else:
            position, length = None, 1
        kwargs = {} if hint is None else {"hint": hint}
        raise GridExpressionError(problem, text=self.text or self.name, position=position,
                                  length=length, **kwargs)

    def range(self, args: List[Tuple[Any, Any]], kwargs: Dict[str, Tuple[Any, Any]]) -> RangeValues:
        hint = "range(stop), range(start, stop) or range(start, stop, step), e.g. range(1, 10, 2)"
        if kwargs:
            self.fail("range takes no keyword arguments", next(iter(kwargs.values()))[1], hint)
        if not 1 <= len(args) <= 3:
            self.fail(f"range takes 1 to 3 arguments, got {len(args)}", None, hint)
        for value, token in args:
            if not _is_number(value):
                self.fail(f"range arguments must be numbers, got {value!r}", token, hint)
            if isinstance(value, float) and not math.isfinite(value):
                self.fail(f"range arguments must be finite, got {value!r}", token, hint)
        values = [v for v, _ in args]
        if len(values) == 1:
            values = [0, values[0]]
        start, stop, step = (values + [1])[:3]
        if step == 0:
            self.fail("range step must not be zero", args[2][1] if len(args) == 3 else None, hint)
        result = RangeValues(start, stop, step)
        if result.size == 0:
            self.fail("empty range: nothing to sweep", None,
                      "stop must lie beyond start in the step's direction, e.g. range(10, 0, -2)")
        return result

    def distribution(
        self, args: List[Tuple[Any, Any]], kwargs: Dict[str, Tuple[Any, Any]]
    ) -> Distribution:
        info = distributions.DISTRIBUTIONS[self.name]
        count = info.count_name
        hint = (f"{info.signature}: parameters {', '.join(info.params) or '(none)'}, then the "
                f"number of values {count} (or size={count}); without {count}, random_search draws "
                f"a fresh value per trial")
        accepted = set(info.params) | set(info.keyword_only) | {"size"}
        for key, (_, token) in kwargs.items():
            if key not in accepted:
                self.fail(f"{self.name} has no argument '{key}'", token,
                          f"accepted: {', '.join(sorted(accepted))}")
        positional = list(args)
        count_entry: Optional[Tuple[Any, Any]] = kwargs.get("size")
        if count_entry is None and len(positional) == len(info.params) + 1:
            count_entry = positional.pop()
        if len(positional) > len(info.params):
            # The caret goes under the first argument past the parameters and the count.
            first_extra = len(info.params) + (0 if "size" in kwargs else 1)
            self.fail(f"too many arguments: {self.name} takes {len(info.params)} parameter(s) "
                      f"and a count", positional[first_extra][1], hint)
        params = {name: entry for name, entry in zip(info.params, positional)}
        for key, entry in kwargs.items():
            if key in params:
                self.fail(f"parameter '{key}' given twice", entry[1], hint)
            if key != "size":
                params[key] = entry
        missing = [p for p in info.params[: info.required] if p not in params]
        if missing:
            self.fail(f"{self.name} needs parameter(s) {', '.join(missing)}", None, hint)
        count = None
        if count_entry is not None:
            count, token = count_entry
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                self.fail(f"the count must be a positive int, got {count!r}", token, hint)
            if count > MAX_COUNT:
                self.fail(f"the count {count:,} is above the ceiling of {MAX_COUNT:,} values per "
                          "distribution (they are drawn together and kept in memory)", token,
                          f"give at most {MAX_COUNT:,}, or drop the count and use random_search "
                          "to draw a fresh value per trial")
        keywords = {k: v for k, (v, _) in kwargs.items() if k != "size"}
        result = Distribution(self.name, tuple(v for v, _ in positional), keywords, count)
        self._check_parameters(result, hint)
        return result

    def _check_parameters(self, dimension: Distribution, hint: str) -> None:
        from grid_sweeper.seeding import generator

        try:
            distributions.draw(generator(0, 0), dimension.name, dimension.args, dimension.kwargs, 1)
        except distributions.DistributionParameterError as error:
            self.fail(f"invalid parameters for {dimension.describe()}: numpy says {error}",
                      None, hint)


def parse_expression(text: str, flag: Optional[str] = None) -> Expression:
    """Parse a flag's text. Raises GridExpressionError (naming `flag`) on bad input."""
    try:
        return _Parser(text).expression()
    except GridExpressionError as error:
        raise (error.with_flag(flag) if flag else error) from None


def is_sweep(expression: Expression) -> bool:
    """Whether the expression sweeps (a list, range or distribution), not a plain value."""
    return not isinstance(expression, Fixed)
