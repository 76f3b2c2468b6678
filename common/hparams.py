"""The declaration of one configuration key (`Hparam`): default, help, allowed values, paper equation.

Engine keys (`common.config.ENGINE_KEYS`) and every method's `hparams` use it; `common.config` re-exports both
names, and resolution checks every value against its declaration before any data loads (`docs/config.md`).
"""

from __future__ import annotations

import re
from typing import NamedTuple


class ConfigError(ValueError):
    """A configuration problem the user can fix (unknown key, bad value, missing file)."""


class Hparam(NamedTuple):
    """The declaration of one configuration key.

    `Hparam(1e-6, "adjustment intensity", gt=0, equation="AdaHAT Eq. 9")`: the default (a method's YAML may set
    the published value over it), a one-line help, and what is allowed: `choices`, or bounds `gt` / `ge` / `lt` /
    `le`, or a regular expression `pattern` (with `allowed` describing it in words). `kind` is the value's type,
    taken from the default unless given (a `None` default means "must be given" and a word, unless `kind` says
    otherwise). A named tuple: `spec[0]` is the default, as in the older `(default, type, help)` entries.
    """

    default: object
    help: str = ""
    choices: tuple = ()
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    equation: str = ""
    kind: type | None = None
    pattern: str = ""
    allowed: str = ""

    def value_type(self) -> type:
        if self.kind is not None:
            return self.kind
        return str if self.default is None else type(self.default)

    def describe(self) -> str:
        """What the key allows, in words: 'one of a, b', '> 0 and < 1', ... ('' when only its type is checked)."""
        if self.allowed:
            return self.allowed
        if self.choices:
            return "one of " + ", ".join(repr(c) if c == "" else str(c) for c in self.choices)
        bounds = [f"{op} {bound:g}" for op, bound in ((">", self.gt), (">=", self.ge), ("<", self.lt),
                                                      ("<=", self.le)) if bound is not None]
        if bounds:
            return " and ".join(bounds)
        return f"matching {self.pattern}" if self.pattern else ""

    def violates(self, value) -> bool:
        if value is None:
            return False
        if self.choices and value not in self.choices:
            return True
        if self.pattern and not re.fullmatch(self.pattern, str(value)):
            return True
        return any(bound is not None and not test(value, bound) for bound, test in (
            (self.gt, lambda v, b: v > b), (self.ge, lambda v, b: v >= b), (self.lt, lambda v, b: v < b),
            (self.le, lambda v, b: v <= b)))

    def check(self, key: str, value, source: str = "") -> None:
        """Raise a ConfigError naming the key, what it allows and the offending value (and where it was set)."""
        if self.violates(value):
            where = f" (set in {source})" if source else ""
            raise ConfigError(f"{key} must be {self.describe()}, got {value!r}{where}")


def as_hparam(entry) -> Hparam:
    """An `Hparam` from a declaration: an `Hparam`, an older `(default, type, help)` tuple, or a plain default."""
    if isinstance(entry, Hparam):
        return entry
    if isinstance(entry, tuple) and len(entry) == 3 and isinstance(entry[1], type):
        return Hparam(entry[0], entry[2], kind=entry[1])
    return Hparam(entry)
