"""CEL conditions over a gate's query result (`successCondition`, `failureCondition`, and the
`condition` of an abort condition).

A condition sees one variable, `result`: the list of sample values (doubles) a Prometheus
instant query returned, e.g. `result[0] > 0` or `size(result) > 0 && result.all(x, x < 0.05)`.
Conditions are compiled once, when the plan is validated, so a condition that cannot parse or
names anything but `result` is refused before a drill starts; what can only go wrong at run
time (a type error, an index out of range) raises ConditionEvalError, which a gate counts as an
Error measurement ("the gate is wrong"), never as a success.

cel-python (`celpy`) is the evaluator: a maintained CEL implementation, no eval(), no parser of
our own.

The cost of a condition is bounded: an expression of at most MAX_EXPRESSION_CHARS, no
comprehension macro in the body of another (`result.all(x, result.exists(y, ...))` would
cost the square of the samples; a chain such as `result.map(...).all(...)` is linear), and
at most MAX_SAMPLES values per evaluation (more is a ConditionEvalError): linear in a
bounded input. The engine evaluates conditions on a worker thread, never on the event loop
(drills/gaterunner.py, drills/aborts.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import celpy
import lark
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError

MAX_EXPRESSION_CHARS = 4096
#: The most values a condition is evaluated on (a query's result beyond it is an error).
MAX_SAMPLES = 10_000

# Names a condition may use besides `result`: CEL's type names (`type(x) == double`).
_TYPE_NAMES = frozenset(
    {"bool", "bytes", "double", "duration", "int", "list", "map", "null_type", "string"}
    | {"timestamp", "type", "uint"}
)
# Macros whose first argument binds a variable (`result.all(x, x < 1)` binds x).
_BINDING_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
VARIABLE = "result"

# Building a celpy Environment builds its lark parser (~0.2 s); one is shared. Its compile()
# and program() keep per-call state on the instance, so calls are serialised.
_lock = threading.Lock()
_environment: celpy.Environment | None = None


class ConditionError(ValueError):
    """A condition that can never work: it does not parse, or it names unknown variables."""

    def __init__(self, expression: str, problem: str) -> None:
        super().__init__(f"condition {expression!r}: {problem}")
        self.expression = expression
        self.problem = problem


class ConditionEvalError(Exception):
    """A condition that did not evaluate on this result (type error, index out of range, not a
    bool). The message names the expression."""


@dataclass(frozen=True)
class CompiledCondition:
    expression: str
    _runner: celpy.Runner = field(repr=False, compare=False)

    def evaluate(self, result: Sequence[float]) -> bool:
        """True or False for this result; ConditionEvalError when it does not evaluate."""
        if len(result) > MAX_SAMPLES:
            raise ConditionEvalError(
                f"condition {self.expression!r}: the query returned {len(result)} samples; a "
                f"condition is evaluated on at most {MAX_SAMPLES} (aggregate in PromQL)"
            )
        activation = {"result": celtypes.ListType([celtypes.DoubleType(v) for v in result])}
        try:
            value = self._runner.evaluate(activation)
        except CELEvalError as exc:
            raise ConditionEvalError(
                f"condition {self.expression!r} does not evaluate: {_describe(exc)}"
            ) from exc
        except Exception as exc:  # celpy: "any Python exception reflects a serious problem"
            raise ConditionEvalError(
                f"condition {self.expression!r} does not evaluate: {type(exc).__name__}: {exc}"
            ) from exc
        # celpy may hand an error back as a value instead of raising it.
        if isinstance(value, CELEvalError):
            raise ConditionEvalError(
                f"condition {self.expression!r} does not evaluate: {_describe(value)}"
            )
        if not isinstance(value, celtypes.BoolType):
            raise ConditionEvalError(
                f"condition {self.expression!r} gave {_cel_type_name(value)}, not a bool"
            )
        return bool(value)


def compile_condition(expression: str) -> CompiledCondition:
    """Parse `expression` and check that it only uses `result`; ConditionError otherwise."""
    text = expression.strip()
    if not text:
        raise ConditionError(expression, "empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ConditionError(expression, f"longer than {MAX_EXPRESSION_CHARS} characters")
    with _lock:
        environment = _get_environment()
        try:
            tree = environment.compile(text)
        except CELParseError as exc:
            where = f" at column {exc.column}" if exc.column else ""
            raise ConditionError(expression, f"does not parse{where}") from exc
        if _nested_macro(tree):
            raise ConditionError(
                expression,
                "a macro inside another macro (all, exists, exists_one, map, filter) is refused: "
                "its cost grows with the square of the samples",
            )
        unknown = sorted(_free_names(tree) - {VARIABLE} - _TYPE_NAMES)
        if unknown:
            names = ", ".join(repr(n) for n in unknown)
            raise ConditionError(expression, f"unknown name {names} (only 'result' is defined)")
        runner = environment.program(tree)
    return CompiledCondition(expression=text, _runner=runner)


def _get_environment() -> celpy.Environment:
    global _environment
    if _environment is None:
        _environment = celpy.Environment()
    return _environment


def _free_names(tree: lark.Tree[lark.Token]) -> set[str]:
    """Identifiers the expression reads, less the variables its macros bind. Scoping is
    approximated (a name bound anywhere counts as bound): this check only exists to refuse
    typos early; evaluation stays the judge."""
    used: set[str] = set()
    bound: set[str] = set()
    for node in _walk(tree):
        if node.data == "ident":
            used.add(str(node.children[0]))
        elif node.data == "member_dot_arg" and str(node.children[1]) in _BINDING_MACROS:
            arguments = node.children[2] if len(node.children) > 2 else None
            if isinstance(arguments, lark.Tree) and arguments.children:
                first = arguments.children[0]
                if isinstance(first, lark.Tree):
                    bound.update(str(n.children[0]) for n in _walk(first) if n.data == "ident")
    return used - bound


def _is_macro(node: lark.Tree[lark.Token]) -> bool:
    return node.data == "member_dot_arg" and str(node.children[1]) in _BINDING_MACROS


def _nested_macro(tree: lark.Tree[lark.Token]) -> bool:
    """A comprehension macro whose body (its arguments) holds another one: evaluated once
    per sample each, it costs the square of the samples. A chain on the target
    (`result.map(...).all(...)`) stays linear and is allowed."""
    for node in _walk(tree):
        if not _is_macro(node):
            continue
        inner = [c for c in node.children[2:] if isinstance(c, lark.Tree)]
        if any(_is_macro(n) for child in inner for n in _walk(child)):
            return True
    return False


def _walk(tree: lark.Tree[lark.Token]) -> Iterator[lark.Tree[lark.Token]]:
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child for child in node.children if isinstance(child, lark.Tree))


def _describe(exc: CELEvalError) -> str:
    args = exc.args
    message = str(args[0]) if args else type(exc).__name__
    # celpy appends its whole activation to "undeclared reference" errors; it helps no one.
    message = message.split(" (in activation", 1)[0]
    # celpy's errors carry (message, Python exception type, its args); for type and index
    # errors the Python message is the one a user understands.
    detail = args[2] if len(args) >= 3 and args[1] in (TypeError, IndexError) else None
    if isinstance(detail, tuple) and detail:
        message = str(detail[0])
    return message[:300]


def _cel_type_name(value: object) -> str:
    names = {
        celtypes.DoubleType: "a double",
        celtypes.IntType: "an int",
        celtypes.UintType: "a uint",
        celtypes.StringType: "a string",
        celtypes.ListType: "a list",
        celtypes.MapType: "a map",
    }
    return names.get(type(value), f"a {type(value).__name__}")
