"""The text of one flag on a command line, `key=value`: the one place that splits it.

Hydra writes `+key=value`, `++key=value`, `~key` and `key=value`; gridsweep's Hydra-style flags are
the same. Records, definitions, the metric columns and the Hydra shims all split lines here.
"""
from typing import Optional, Tuple


def split_override(line: str) -> Tuple[str, Optional[str]]:
    """(key as typed, with its `+`, `++` or `~`; the value text, None for `~key` without `=`)."""
    key, sep, value = line.partition("=")
    return key, (value if sep else None)


def flag_name(key: str) -> str:
    """A flag's name without Hydra's `+`, `++` or `~` prefix."""
    return key.lstrip("+~")


def name_and_value(line: str) -> Tuple[str, str]:
    """`+key=value` -> (`key`, `value`); `~key` -> (`key`, ``)."""
    key, value = split_override(line)
    return flag_name(key), value or ""
