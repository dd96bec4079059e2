"""Chat templates are code from the model file: Jinja's sandbox, with limits on what they cost.

Jinja's `ImmutableSandboxedEnvironment` (what llama-cpp-python uses) stops a template from
reaching Python internals, but not from running for hours or filling the memory:
`range(100000)` nested twice, `'x' * 10**10`, a string doubled in a loop, a macro calling
itself. `BoundedTemplate` renders with a budget, checked as the template runs:

- steps: every loop iteration and every call (macros, methods, `range`) counts one; a render
  stops after `MAX_STEPS` (plus a share per message) or `TIME_LIMIT` seconds, whichever first;
- calls nested deeper than `MAX_DEPTH` stop it (a macro calling itself);
- size: no value is made larger than the output limit (`MIN_OUTPUT` plus 8 times the
  conversation's text) before it is made: `*`, `+`, `%`, `**`, `~`, string methods and filters
  that widen (`center`, `replace`, `join`, `indent`, `format`, `tojson` ...) are checked from
  their inputs; everything written out (including macro and `set` block bodies) counts against
  the same limit.

Loops and concatenation are guarded by rewriting the parsed template (each `for` iterates through
a counting filter, each `~` goes through a sized join); operators through the sandbox's own
`call_binop` hook; calls through `call`. A render that hits a limit raises `TemplateProblem`, as
does any error the template raises; `chat_format` names the model in what the user sees.
"""

from __future__ import annotations

import functools
import itertools
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

from assistant.engine.template_limits import (
    Budget,
    LimitReached,
    check_binop,
    check_format,
    check_ints,
    check_method,
    filter_estimate,
    materialize,
    size_of,
)

MAX_TEMPLATE_CHARS = 256 * 1024  # real templates: 1-20 KB
MAX_STEPS = 200_000  # loop iterations and calls per render, plus STEPS_PER_MESSAGE per message
STEPS_PER_MESSAGE = 2_000
MAX_DEPTH = 64  # nested calls: a recursive macro stops here, long before Python's limit
TIME_LIMIT = 2.0  # seconds per render (a real template renders 40 messages in about 0.3 ms)
MIN_OUTPUT = 1 << 20  # characters; plus OUTPUT_PER_INPUT per character of the conversation
OUTPUT_PER_INPUT = 8
OUTPUT_BATCH = 16  # pieces of output counted at once (each is a checked value)

# What a template can raise: its own errors and those of the Python operations it may use.
TEMPLATE_ERRORS = (
    jinja2.TemplateError,
    ArithmeticError,
    AttributeError,
    LookupError,
    MemoryError,
    RuntimeError,  # RecursionError among them
    TypeError,
    ValueError,
)


class TemplateProblem(Exception):
    """The template could not be compiled or rendered; the message says why, in plain words.
    `retry`: the template raised an error of its own (it may accept the conversation put
    differently), rather than hitting a limit."""

    def __init__(self, message: str, *, retry: bool = False):
        super().__init__(message)
        self.retry = retry


class TemplateRefusal(ValueError):
    """The template called `raise_exception(message)`: it refuses this conversation."""


def raise_exception(message: Any) -> NoReturn:
    """What chat templates call to refuse a conversation (as in Hugging Face's renderer)."""
    raise TemplateRefusal(str(message))


# Filters whose arguments or result can be much larger than their input: checked in full.
_WIDENING = {
    "batch", "center", "format", "indent", "join", "list", "pprint", "replace", "slice",
    "string", "sum", "tojson", "truncate", "urlencode", "wordwrap", "xmlattr",
}  # fmt: skip
_HELD = (str, list, tuple, dict)  # values already in memory: nothing to count


def _guard_filter(name: str, func: Callable[..., Any], env: BoundedEnvironment) -> Callable:
    """`func` with its inputs checked first: iterators counted into lists, widths bounded."""
    passes = getattr(func, "jinja_pass_arg", None) is not None  # context/eval_ctx/env first
    widening = name in _WIDENING

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = env.budget()
        budget.tick()
        head, value, rest = (args[:1], args[1], args[2:]) if passes else ((), args[0], args[1:])
        if type(value) not in _HELD:
            value = materialize(value, budget)
        if widening:
            check_ints(rest, budget, f"the {name} filter")
            check_ints(kwargs.values(), budget, f"the {name} filter")
            estimate = filter_estimate(name, value, rest, kwargs, budget)
            if estimate:
                budget.fits(estimate, f"the result of the {name} filter")
        return func(*head, value, *rest, **kwargs)

    return guarded


@jinja2.pass_context
def _loop_guard(context: jinja2.runtime.Context, iterable: Any) -> Iterator[Any]:
    budget = context.environment._budget
    for item in iterable:
        # budget.tick(), inlined and the clock read every 16 steps: this runs for every loop
        # iteration (what can take long inside one, calls and filters, is checked itself)
        budget.steps -= 1
        if not budget.steps & 15:
            budget.check()
        yield item


@jinja2.pass_context
def _add_guard(context: jinja2.runtime.Context, parts: tuple) -> Any:
    """`a + b + c`: strings joined at once after one size check, anything else pair by pair."""
    budget = context.environment._budget  # set: filters that take the context run at render
    try:  # the common case, strings: this runs for every `+` in every message
        if sum(map(len, parts)) <= budget.limit:
            return "".join(parts)
    except TypeError:  # not all strings (lists, numbers, undefined): added one by one
        pass
    result = parts[0]
    for part in parts[1:]:
        check_binop("+", result, part, budget)
        result = result + part
    return result


@jinja2.pass_context
def _concat_guard(context: jinja2.runtime.Context, parts: tuple) -> str:
    budget = context.environment.budget()
    budget.fits(sum(size_of(p, budget.limit) for p in parts), "a ~ concatenation")
    return "".join(map(str, parts))


@jinja2.pass_context
def _written(context: jinja2.runtime.Context, value: Any) -> Any:
    budget = context.environment.budget()
    budget.output -= len(value) if type(value) is str else size_of(value, budget.limit)
    if budget.output < 0:
        budget.write(0)
    return value


class _Guards(NodeTransformer):
    """Route every loop, `+`, `~` and buffered output through the guards above. Output of the
    template itself is counted as it streams (`BoundedTemplate.render`); output inside macros
    and `set`/`call`/`filter` blocks is held in a buffer first, so it is counted as written."""

    _BUFFERED = (nodes.Macro, nodes.CallBlock, nodes.FilterBlock, nodes.AssignBlock)

    def __init__(self) -> None:
        self.buffered = 0

    def visit_For(self, node: nodes.For) -> nodes.Node:
        node = self.generic_visit(node)
        node.iter = _filter(node.iter, "__loop_guard")
        return node

    def visit_Add(self, node: nodes.Add) -> nodes.Node:
        operands = [node.right]
        while isinstance(node.left, nodes.Add):  # `a + b + c` parses as ((a + b) + c)
            node = node.left
            operands.append(node.right)
        operands.append(node.left)
        parts = [self.visit(op) for op in reversed(operands)]
        return _filter(nodes.Tuple(parts, "load", lineno=node.lineno), "__add_guard")

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)
        parts = nodes.Tuple(node.nodes, "load", lineno=node.lineno)
        return _filter(parts, "__concat_guard")

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        node = self.generic_visit(node)
        if self.buffered:
            node.nodes = [_filter(_as_expr(child), "__written") for child in node.nodes]
        return node

    def generic_visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> nodes.Node:
        buffered = isinstance(node, self._BUFFERED)
        self.buffered += buffered
        try:
            return super().generic_visit(node, *args, **kwargs)
        finally:
            self.buffered -= buffered


def _filter(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


def _as_expr(node: nodes.Node) -> nodes.Expr:
    if isinstance(node, nodes.TemplateData):
        return nodes.Const(node.data, lineno=node.lineno)
    return node


# -- the environment ----------------------------------------------------------------------------
class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """llama-cpp-python's chat template environment (same options, extensions and `tojson`),
    with every loop, call, output and size-changing operation charged to a render budget."""

    intercepted_binops = frozenset({"*", "**", "%"})  # `+` is rewritten (`_add_guard`)

    def __init__(self) -> None:
        super().__init__(
            loader=jinja2.BaseLoader(),
            trim_blocks=True,
            lstrip_blocks=True,
            extensions=[Jinja2ChatFormatter.IgnoreGenerationTags, jinja2.ext.loopcontrols],
        )
        self.filters["tojson"] = Jinja2ChatFormatter.tojson
        self.filters = {name: _guard_filter(name, f, self) for name, f in self.filters.items()}
        self.filters.update(
            __loop_guard=_loop_guard,
            __add_guard=_add_guard,
            __concat_guard=_concat_guard,
            __written=_written,
        )
        self.globals.pop("lipsum", None)  # n paragraphs of filler text: no template needs it
        self._budget: Budget | None = None  # set for one render at a time (BoundedTemplate)

    def budget(self) -> Budget:
        budget = self._budget
        if budget is None:  # compile time (constant folding): leave it to the render
            raise LimitReached("not rendering")
        return budget

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _Guards().visit(super()._parse(source, name, filename))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right, self.budget())
        return self.binop_table[operator](left, right)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = self.budget()
        budget.tick()
        if isinstance(obj, jinja2.runtime.LoopContext):  # `loop(children)`: a recursive loop
            args = (_loop_guard(context, args[0]), *args[1:]) if args else args
        check_ints(args, budget, obj)
        check_ints(kwargs.values(), budget, obj)
        args = check_method(obj, args, kwargs, budget)
        budget.depth += 1
        try:
            if budget.depth > MAX_DEPTH:
                raise LimitReached(f"it nests calls more than {MAX_DEPTH} deep (a recursion?)")
            return super().call(context, obj, *args, **kwargs)
        finally:
            budget.depth -= 1

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if not isinstance(value, (types.BuiltinMethodType, types.MethodType)):
            return None  # not `str.format` (this runs for every attribute a template reads)
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text, is_map = value.__self__, value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            values = list(args[0].values()) if is_map and args else list(args)
            check_format(text, values + list(kwargs.values()), self.budget(), printf=False)
            return wrapped(*args, **kwargs)

        return checked

    def start(self, budget: Budget | None) -> None:
        self._budget = budget


class BoundedTemplate:
    """A template compiled in a `BoundedEnvironment`; `render` raises `TemplateProblem`."""

    def __init__(self, source: str):
        if len(source) > MAX_TEMPLATE_CHARS:
            raise TemplateProblem(
                f"the template is {len(source):,} characters long (at most {MAX_TEMPLATE_CHARS:,})"
            )
        self.env = BoundedEnvironment()
        self._lock = threading.Lock()  # the budget is the environment's: one render at a time
        try:
            self._template = self.env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateProblem(f"syntax error on line {exc.lineno}: {exc.message}") from None
        except TEMPLATE_ERRORS as exc:  # a template too deeply nested for Python's compiler
            raise TemplateProblem(f"it cannot be compiled ({_describe(exc)})") from None

    def render(self, input_chars: int, n_messages: int, **variables: Any) -> str:
        """Render within the budget for a conversation of `input_chars` characters."""
        with self._lock:
            budget = Budget(
                steps=MAX_STEPS + STEPS_PER_MESSAGE * n_messages,
                output=MIN_OUTPUT + OUTPUT_PER_INPUT * input_chars,
                seconds=TIME_LIMIT,
            )
            return self._render(budget, variables)

    def _render(self, budget: Budget, variables: dict[str, Any]) -> str:
        self.env.start(budget)
        try:
            template = self._template  # its render loop, without generate()'s extra layer
            pieces = template.root_render_func(template.new_context(variables))
            parts: list[str] = []
            while batch := list(itertools.islice(pieces, OUTPUT_BATCH)):
                budget.write(sum(map(len, batch)))  # counted a few pieces at a time: cheaper
                parts += batch
            return "".join(parts)
        except LimitReached as exc:
            raise TemplateProblem(f"it was stopped: {exc}") from None
        except (RecursionError, MemoryError) as exc:
            raise TemplateProblem(_describe(exc)) from None
        except TEMPLATE_ERRORS as exc:
            raise TemplateProblem(_describe(exc), retry=True) from None
        finally:
            self.env.start(None)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "it recurses too deeply"
    if isinstance(exc, MemoryError):
        return "it needed more memory than there is"
    if isinstance(exc, TemplateRefusal):
        return f"it refuses the conversation: {_first_line(str(exc))}"
    text = _first_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _first_line(text: str) -> str:
    text = text.strip().splitlines()[0] if text.strip() else ""
    return text if len(text) <= 200 else text[:197] + "..."
