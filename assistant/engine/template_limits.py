"""What a chat template may spend in one render, and the checks that keep it to that.

`Budget` counts steps (loop iterations, calls, filters), time, call depth and characters
written; the `check_*` functions refuse, from its inputs, an operation whose result would be
larger than the budget's limit (`LimitReached`) before Python builds it. `template_sandbox`
calls them from the Jinja environment's hooks.
"""

from __future__ import annotations

import re
import string
import time
from collections.abc import Iterable, Mapping, Sized
from typing import Any

MAX_INT_BITS = 1 << 16  # integers a template may compute (no template needs more than 64)


class LimitReached(Exception):
    """Raised inside a render when the budget runs out (not a TemplateError: no retry)."""


class Budget:
    """What one render may still spend: steps, time, call depth, characters of output."""

    def __init__(self, steps: int, output: int, seconds: float):
        self.steps = steps
        self.max_steps = steps
        self.output = output  # characters still allowed, written or held in a value
        self.limit = output
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self.depth = 0

    def tick(self) -> None:
        self.steps -= 1
        self.check()

    def check(self) -> None:
        if self.steps < 0:
            raise LimitReached(
                f"it runs more than {self.max_steps:,} loop steps and calls (a runaway loop?)"
            )
        if time.monotonic() > self.deadline:
            raise LimitReached(f"it runs longer than {self.seconds:g} s")

    def fits(self, size: int, what: str) -> None:
        if size > self.limit:
            raise LimitReached(f"{what} would be {size:,} characters (at most {self.limit:,})")

    def write(self, size: int) -> None:
        self.output -= size
        if self.output < 0:
            raise LimitReached(f"its output is larger than {self.limit:,} characters")


def size_of(value: Any, limit: int, depth: int = 0) -> int:
    """About how many characters `value` makes when written out; counting stops past `limit`."""
    kind = type(value)
    if kind is str or kind is bytes or isinstance(value, (str, bytes)):
        return len(value)
    if kind is int:
        return value.bit_length() // 3 + 1
    if isinstance(value, Mapping):
        items: Iterable[Any] = (x for pair in value.items() for x in pair)
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        return 1
    total = 2
    for item in items:
        total += 1 + (size_of(item, limit, depth + 1) if depth < 32 else 1)
        if total > limit:
            break
    return total


def materialize(value: Any, budget: Budget) -> Any:
    """An iterator (a generator from `map`, `select`, ...) as a list, counted item by item, so a
    filter that lists it internally cannot fill the memory first."""
    if isinstance(value, Sized) or not isinstance(value, Iterable):
        return value
    items: list[Any] = []
    for item in value:  # references: what a list holds; its text is checked where written
        budget.tick()
        items.append(item)
        if len(items) > budget.limit:
            budget.fits(len(items), "a sequence")
    return items


# -- checks for operations that can make large values ------------------------------------------
_PRINTF_WIDTH = re.compile(r"%[-#0 +]*(\d*)(?:\.(\d*))?")


def check_ints(args: Iterable[Any], budget: Budget, what: Any) -> None:
    """No whole number larger than the output limit (a width, a count, a length)."""
    for arg in args:
        if type(arg) is int and abs(arg) > budget.limit:
            if not isinstance(what, str):  # a callable: named only when it is refused
                name = getattr(what, "__name__", "a function")
                what = f"{'range' if name == 'safe_range' else name}()"
            raise LimitReached(f"{what} is given {arg:,} (at most {budget.limit:,})")


def check_format(text: str, args: Iterable[Any], budget: Budget, printf: bool) -> None:
    """A format string's widths and its arguments' sizes: what formatting can produce."""
    args = list(args)
    check_ints(args, budget, "a format")
    widths = 0
    if printf:
        for width, precision in _PRINTF_WIDTH.findall(text):
            widths += int(width or 0) + int(precision or 0)
    else:
        try:
            specs = [spec or "" for _, _, spec, _ in string.Formatter().parse(text)]
        except ValueError:
            specs = []  # the formatter itself reports the bad format string
        widths = sum(int(n) for spec in specs for n in re.findall(r"\d+", spec))
    total = len(text) + widths + sum(size_of(a, budget.limit) for a in args)
    budget.fits(total, "a formatted string")


def length_of(value: Any) -> int:
    """What `+` and `*` copy: characters of a string, items (references) of a list. What a list
    amounts to when written out is checked where it is written (join, string, output)."""
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else 1


def check_binop(op: str, left: Any, right: Any, budget: Budget) -> None:
    if op == "+":
        if isinstance(left, (str, bytes, list, tuple)):
            budget.fits(length_of(left) + length_of(right), "a concatenation")
    elif op == "*":
        seq, times = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(seq, (str, bytes, list, tuple)) and isinstance(times, int):
            budget.fits(len(seq) * max(times, 0), "a repetition")
        elif isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise LimitReached(f"a product is larger than {MAX_INT_BITS:,} bits")
    elif op == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if right * left.bit_length() > MAX_INT_BITS:
                raise LimitReached(f"a power is larger than {MAX_INT_BITS:,} bits")
    elif op == "%" and isinstance(left, (str, bytes)):
        args = right if isinstance(right, tuple) else (right,)
        if isinstance(right, Mapping):
            args = tuple(right.values())
        text = left if isinstance(left, str) else left.decode("latin-1")
        check_format(text, args, budget, printf=True)


def check_method(method: Any, args: tuple, kwargs: dict, budget: Budget) -> tuple:
    """String methods that can make a string much larger than their inputs; returns the
    arguments to call with (an iterator given to `join` is listed, counted, first)."""
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, (str, bytes)):
        return args
    name = getattr(method, "__name__", "")
    size = len(owner)
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        size = max(size, args[0])
    elif name == "expandtabs":
        tab = args[0] if args and isinstance(args[0], int) else kwargs.get("tabsize", 8)
        size += owner.count("\t" if isinstance(owner, str) else b"\t") * max(int(tab), 0)
    elif name == "replace" and len(args) >= 2:
        size = _replaced_size(owner, args[0], args[1], args[2] if len(args) > 2 else -1)
    elif name == "join" and args:
        items = list(materialize(args[0], budget))
        size = sum(size_of(i, budget.limit) for i in items) + len(owner) * len(items)
        args = (items,)
    elif name == "translate" and args and isinstance(args[0], Mapping):
        widest = max((size_of(v, budget.limit) for v in args[0].values()), default=1)
        size *= max(widest, 1)
    budget.fits(size, f"the result of {name}()")
    return args


def _replaced_size(text: Any, old: Any, new: Any, count: int = -1) -> int:
    if not isinstance(old, type(text)) or not isinstance(new, type(text)):
        return len(text)
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


# -- filters ------------------------------------------------------------------------------------
def filter_estimate(name: str, value: Any, args: tuple, kwargs: dict, budget: Budget) -> int:
    """The most characters filter `name` can produce from these inputs (0: nothing to check)."""
    limit = budget.limit
    if name in ("center", "indent", "wordwrap"):
        width = args[0] if args else kwargs.get("width", 80)
        width = len(width) if isinstance(width, str) else width
        lines = str(value).count("\n") + 2
        return size_of(value, limit) + (width * lines if isinstance(width, int) else 0)
    if name == "replace" and len(args) >= 2 and isinstance(value, str):
        return _replaced_size(value, args[0], args[1], args[2] if len(args) > 2 else -1)
    if name == "join":
        sep = args[0] if args else kwargs.get("d", "")
        items = value if isinstance(value, Sized) else ()
        return size_of(value, limit) + size_of(sep, limit) * len(items)
    if name == "format" and isinstance(value, str):
        check_format(value, list(args) + list(kwargs.values()), budget, printf=True)
        return 0
    if name in ("tojson", "pprint"):
        indent = kwargs.get("indent") or (args[0] if args else 0)
        indent = indent if isinstance(indent, int) else 4
        return size_of(value, limit) * (6 + max(indent, 0))
    if name in ("string", "xmlattr", "urlencode"):
        return size_of(value, limit)
    if name == "sum" and isinstance(value, (list, tuple)):  # lists of lists are concatenated
        return sum(length_of(v) for v in value)
    return 0
