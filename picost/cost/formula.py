"""Cost formulas: a small, restricted arithmetic grammar, never ``eval``.

A formula is a string such as ``"2 * (m*k + k*n) * ell / 8"`` or ``"ceil(log2(cols)) * 6"``.
Grammar: numbers, the names a caller allows, ``+ - * / **``, unary minus, parentheses, the
functions ``log2``, ``ceil``, ``floor``, ``min``, ``max``, ``sqrt``, and two forms that bind a
new name (usable only inside them, never one the caller allows):

* ``let(x, value, body)``: ``body`` with ``x`` standing for ``value`` (a sub-expression written once);
* ``pick_min(i, first, last, key, value)``: the ``value`` at the whole number ``i`` in
  ``first..last`` (integer constants, at most :data:`PICK_MIN_SPAN` of them) whose ``key`` is
  least, the last such ``i`` on ties. It writes an engine's own choice among a few shapes (SPU's
  HE block shape: the one of least cost to SPU, whose bytes differ from that cost) without
  spelling every candidate out.

The text is parsed by Python's :mod:`ast` and every node is checked against this grammar before anything is built;
anything else (attributes, other calls, keywords, lambdas, strings, comparisons, subscripts,
unknown names) is a :class:`~picost.errors.UserError` naming the file, line and field.

One checked tree feeds three evaluators built from the same node walk:

* :meth:`Formula.value` -- plain Python numbers (ints stay exact: ``16*n`` with an int ``n`` is an
  int; ``/`` gives a float, integral results come back as ints). Fast, no sympy. This is the
  estimate's path.
* :meth:`Formula.symbolic` -- a sympy expression; symbol values may themselves be sympy
  expressions (e.g. dims containing a symbol ``T``), which substitutes them on the way.
* :func:`lambdify_numpy` -- turns such sympy expressions into numpy functions for sweeps.

sympy and numpy are imported only by the last two.
"""

from __future__ import annotations

import ast
import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Mapping

from picost.errors import UserError
from picost.model import limits

FUNCTIONS: dict[str, tuple[int, int | None]] = {
    # name: (min args, max args or None for unbounded)
    "log2": (1, 1),
    "ceil": (1, 1),
    "floor": (1, 1),
    "sqrt": (1, 1),
    "min": (2, None),
    "max": (2, None),
    "pick_min": (5, 5),
    "let": (3, 3),
}

PICK_MIN_SPAN = 64
"""At most this many values of a ``pick_min`` index (each costs one evaluation of key and value)."""

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
_UNARY = (ast.USub, ast.UAdd)


@dataclass(frozen=True)
class Formula:
    """A checked formula: its text, the names it uses and a compiled numeric evaluator."""

    text: str
    names: frozenset[str]
    tree: ast.Expression = field(repr=False, compare=False)
    _value: Callable[[Mapping[str, Any]], Any] = field(repr=False, compare=False)

    def value(self, env: Mapping[str, Any]) -> Any:
        """Evaluate with Python numbers (or numpy arrays) for every name; integral floats -> int."""
        out = self._value(env)
        if isinstance(out, float) and out.is_integer() and abs(out) < 2**53:
            return int(out)
        return out

    def symbolic(self, env: Mapping[str, Any] | None = None) -> Any:
        """A sympy expression. Names missing from ``env`` become positive sympy symbols."""
        import sympy

        values = dict(env or {})
        for name in self.names - values.keys():
            values[name] = sympy.Symbol(name, positive=True)
        return _build(self.tree.body, _sympy_backend())(values)

    def __str__(self) -> str:
        return self.text


def parse(text: Any, allowed_names: Collection[str], *, file: str | None = None,
          line: int | None = None, field_name: str | None = None) -> Formula:
    """Check ``text`` against the grammar and the ``allowed_names``; return a :class:`Formula`.

    ``text`` may be a string or a plain number (YAML ``rounds: 40``). Errors are located with
    ``file``, ``line`` and ``field_name``.
    """

    def fail(message: str) -> UserError:
        return UserError(f"formula {text!r}: {message}", file=file, line=line, field=field_name)

    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise fail("a formula must be a string or a number")
    if isinstance(text, float) and not math.isfinite(text):
        raise fail("a formula must be finite")
    if isinstance(text, int) and not limits.number_ok(text):
        raise fail(f"a number beyond {limits.MAX_INT_BITS} bits")
    source = str(text).strip()
    if not source:
        raise fail("empty formula")
    if len(source) > limits.MAX_FORMULA_CHARS:
        raise UserError(f"formula of {len(source)} characters; at most {limits.MAX_FORMULA_CHARS} "
                        "(see docs/limits.md)", file=file, line=line, field=field_name)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise fail(f"syntax error ({exc.msg})") from None
    except (ValueError, RecursionError, MemoryError):  # a literal beyond Python's digit limit, deep nesting
        raise fail("too large or too deeply nested (see docs/limits.md)") from None
    _check_size(tree, fail)
    names: set[str] = set()
    _check(tree.body, frozenset(allowed_names), names, fail)
    return Formula(source, frozenset(names), tree, _build(tree.body, _PYTHON))


def _check_size(tree: ast.Expression, fail: Callable[[str], UserError]) -> None:
    """Refuse trees past :data:`~picost.model.limits.MAX_FORMULA_NODES` nodes or
    :data:`~picost.model.limits.MAX_FORMULA_DEPTH` levels (iteratively: no recursion on input)."""
    count, stack = 0, [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > limits.MAX_FORMULA_NODES or depth > limits.MAX_FORMULA_DEPTH:
            raise fail(f"more than {limits.MAX_FORMULA_NODES} terms or {limits.MAX_FORMULA_DEPTH} levels of "
                       "nesting (see docs/limits.md)")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _check(node: ast.AST, allowed: frozenset[str], names: set[str], fail: Callable[[str], UserError]) -> None:
    """Raise unless ``node`` is inside the grammar; collect the names it uses."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise fail(f"only numbers are allowed as constants, not {node.value!r}")
        if not limits.number_ok(node.value):
            raise fail(f"constant {limits.short(node.value)} is not finite or exceeds {limits.MAX_INT_BITS} bits")
        return
    if isinstance(node, ast.Name):
        if node.id in FUNCTIONS:
            raise fail(f"'{node.id}' is a function; call it as {node.id}(...)")
        if node.id not in allowed:
            hint = ", ".join(sorted(allowed)) or "none"
            raise fail(f"unknown symbol '{node.id}' (allowed here: {hint})")
        names.add(node.id)
        return
    if isinstance(node, ast.BinOp) and isinstance(node.op, _BINOPS):
        _check(node.left, allowed, names, fail)
        _check(node.right, allowed, names, fail)
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY):
        _check(node.operand, allowed, names, fail)
        return
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            what = ast.unparse(node.func)
            raise fail(f"unknown function '{what}' (allowed: {', '.join(FUNCTIONS)})")
        if node.keywords:
            raise fail(f"{node.func.id}() takes no keyword arguments")
        if any(isinstance(arg, ast.Starred) for arg in node.args):
            raise fail("argument unpacking is not allowed")
        lo, hi = FUNCTIONS[node.func.id]
        if len(node.args) < lo or (hi is not None and len(node.args) > hi):
            want = str(lo) if hi == lo else f"at least {lo}"
            raise fail(f"{node.func.id}() takes {want} argument(s), got {len(node.args)}")
        if node.func.id == "pick_min":
            _check_pick_min(node.args, allowed, names, fail)
            return
        if node.func.id == "let":
            _check(node.args[1], allowed, names, fail)
            name = _new_name(node.args[0], allowed, "let(x, value, body)", fail)
            inner: set[str] = set()
            _check(node.args[2], allowed | {name}, inner, fail)
            names |= inner - {name}
            return
        for arg in node.args:
            _check(arg, allowed, names, fail)
        return
    raise fail(f"'{ast.unparse(node)}' is outside the formula grammar "
               f"(numbers, names, + - * / **, parentheses, {', '.join(FUNCTIONS)})")


def _check_pick_min(args: list[ast.expr], allowed: frozenset[str], names: set[str],
                    fail: Callable[[str], UserError]) -> None:
    """``pick_min(i, first, last, key, value)``: ``i`` a new name, ``first <= last`` whole-number
    constants at most :data:`PICK_MIN_SPAN` apart, ``key`` and ``value`` formulas that may use ``i``."""
    index, first, last = args[0], args[1], args[2]
    name = _new_name(index, allowed, "pick_min(i, first, last, key, value)", fail)
    bounds = [a.value if isinstance(a, ast.Constant) and type(a.value) is int else None for a in (first, last)]
    if None in bounds or not 0 <= bounds[1] - bounds[0] < PICK_MIN_SPAN:
        raise fail(f"pick_min: first and last must be whole numbers with first <= last and at most "
                   f"{PICK_MIN_SPAN} values")
    inner: set[str] = set()
    for arg in args[3:]:
        _check(arg, allowed | {name}, inner, fail)
    names |= inner - {name}


def _new_name(node: ast.expr, allowed: frozenset[str], form: str, fail: Callable[[str], UserError]) -> str:
    """The name that ``form`` binds: a plain name, not a function and not one already in scope."""
    if not isinstance(node, ast.Name) or node.id in FUNCTIONS:
        raise fail(f"{form}: the first argument must be a new name")
    if node.id in allowed:
        raise fail(f"{form}: '{node.id}' is already a symbol here; choose a new name")
    return node.id


# -- evaluators built from a checked tree -----------------------------------------------------

@dataclass(frozen=True)
class _Backend:
    functions: Mapping[str, Callable[..., Any]]
    constant: Callable[[Any], Any]
    power: Callable[[Any, Any], Any]
    symbolic: bool = False
    """sympy values: a ``pick_min`` over symbols stays one opaque function of them (below)."""


def _is_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _unary(name: str) -> Callable[[Any], Any]:
    """``math.<name>`` on a number (``math.log2`` is exact for powers of two), ``numpy.<name>`` on
    an array."""
    scalar = getattr(math, name)

    def fn(x: Any) -> Any:
        if _is_array(x):
            import numpy as np

            return getattr(np, name)(x)
        return scalar(x)

    return fn


def _fold(scalar: Callable[..., Any], array_name: str) -> Callable[..., Any]:
    """``min``/``max``: the builtin on numbers, ``numpy.<array_name>`` folded over the arguments
    (element-wise) when any of them is an array."""

    def fn(*xs: Any) -> Any:
        if any(_is_array(x) for x in xs):
            import numpy as np

            return functools.reduce(getattr(np, array_name), xs)
        return scalar(xs)

    return fn


def _pow(base: Any, exponent: Any) -> Any:
    """``base ** exponent``, refusing whole-number powers beyond
    :data:`~picost.model.limits.MAX_INT_BITS` before computing them (they would hang)."""
    if not limits.power_ok(base, exponent):
        raise OverflowError(f"{limits.short(base)} ** {limits.short(exponent)} exceeds {limits.MAX_INT_BITS} bits")
    return base ** exponent


def _sympy_pow(base: Any, exponent: Any) -> Any:
    """sympy's ``Pow`` with the same refusal as :func:`_pow` (sympy would compute ``10**10**10``)."""
    import sympy

    base, exponent = sympy.sympify(base), sympy.sympify(exponent)
    if base.is_number and exponent.is_number and not limits.power_ok(base, exponent):
        raise OverflowError(f"{limits.short(base)} ** {limits.short(exponent)} exceeds {limits.MAX_INT_BITS} bits")
    return sympy.Pow(base, exponent)


_PYTHON = _Backend({**{name: _unary(name) for name in ("log2", "ceil", "floor", "sqrt")},
                    "min": _fold(min, "minimum"), "max": _fold(max, "maximum")}, lambda v: v, _pow)


def _sympy_backend() -> _Backend:
    import sympy

    return _Backend({"log2": lambda x: sympy.log(x, 2), "ceil": sympy.ceiling, "floor": sympy.floor,
                     "sqrt": sympy.sqrt, "min": sympy.Min, "max": sympy.Max},
                    _sympy_constant, _sympy_pow, symbolic=True)


def _sympy_constant(v: Any) -> Any:
    import sympy

    return sympy.Integer(v) if isinstance(v, int) else sympy.Rational(repr(v))


def _build(node: ast.AST, backend: _Backend) -> Callable[[Mapping[str, Any]], Any]:
    """Compile a checked node into a closure ``env -> value`` (no eval, no code generation)."""
    if isinstance(node, ast.Constant):
        value = backend.constant(node.value)
        return lambda env: value
    if isinstance(node, ast.Name):
        name = node.id
        return lambda env: env[name]
    if isinstance(node, ast.UnaryOp):
        operand = _build(node.operand, backend)
        if isinstance(node.op, ast.USub):
            return lambda env: -operand(env)
        return operand
    if isinstance(node, ast.BinOp):
        left, right = _build(node.left, backend), _build(node.right, backend)
        op = type(node.op)
        if op is ast.Add:
            return lambda env: left(env) + right(env)
        if op is ast.Sub:
            return lambda env: left(env) - right(env)
        if op is ast.Mult:
            return lambda env: left(env) * right(env)
        if op is ast.Div:
            return lambda env: left(env) / right(env)
        power = backend.power
        return lambda env: power(left(env), right(env))
    if isinstance(node, ast.Call) and node.func.id == "pick_min":  # type: ignore[union-attr]
        return _build_pick_min(node, backend)
    if isinstance(node, ast.Call) and node.func.id == "let":  # type: ignore[union-attr]
        bound, value, body = node.args[0].id, _build(node.args[1], backend), _build(node.args[2], backend)  # type: ignore[attr-defined]
        return lambda env: body({**env, bound: value(env)})
    if isinstance(node, ast.Call):
        fn = backend.functions[node.func.id]  # type: ignore[union-attr]
        args = [_build(a, backend) for a in node.args]
        if len(args) == 1:
            only = args[0]
            return lambda env: fn(only(env))
        return lambda env: fn(*(a(env) for a in args))
    raise AssertionError(f"unchecked node {ast.dump(node)}")  # _check rejects everything else


def _build_pick_min(call: ast.Call, backend: _Backend) -> Callable[[Mapping[str, Any]], Any]:
    """``pick_min(i, first, last, key, value)``: key and value at every ``i`` (plain numbers or
    numpy arrays), the value at the least key; numbers in, the result is kept per input (a model's
    equal layers and decode steps search the same shape). Under sympy the search is not spelled
    out (dozens of candidates of a nested formula would make every closed form huge and slow):
    with numbers for every name it is computed, else it is one opaque function of the symbolic
    names' values (``pick_min_N(T)``), computed by the same plain evaluator when a sweep fills in
    ``T``."""
    args = call.args
    index, first, last = args[0].id, args[1].value, args[2].value  # type: ignore[attr-defined]
    key, value = _build(args[3], _PYTHON), _build(args[4], _PYTHON)
    indices = range(first, last + 1)
    nodes = [n for a in args[3:] for n in ast.walk(a)]
    bound = {n.args[0].id for n in nodes if isinstance(n, ast.Call) and n.func.id in ("let", "pick_min")}  # type: ignore[attr-defined]
    names = sorted({n.id for n in nodes if isinstance(n, ast.Name)} - bound - {index})
    text = ast.unparse(call)  # the same search written in two formulas (bytes, compute) is done once

    def search(env: Mapping[str, Any]) -> Any:
        envs = [{**env, index: i} for i in indices]
        return _pick_min([key(e) for e in envs], [value(e) for e in envs])

    def plain(env: Mapping[str, Any]) -> Any:
        inputs = tuple((n, _cache_key(env[n])) for n in names if n in env)  # names a let() binds are not in env
        if any(k is None for _, k in inputs):
            return search(env)
        found = _SEARCHES.get((text, inputs))
        if found is None:
            if len(_SEARCHES) >= 4096:
                _SEARCHES.clear()
            found = _SEARCHES[(text, inputs)] = search(env)
        return found

    if not backend.symbolic:
        return plain
    return lambda env: _sympy_pick({n: env[n] for n in names if n in env}, plain, call)


_SEARCHES: dict[tuple, Any] = {}
"""Results of ``pick_min`` searches by (search text, inputs): a model's equal layers, its decode
steps and a row's bytes and compute search the same shapes."""


def _cache_key(value: Any) -> Any:
    """A hashable stand-in for a search input: the number, or a numeric array's dtype, shape and
    bytes (at most 65,536 values, e.g. one per decode step: the cache stays small); None for
    anything else (not kept)."""
    if isinstance(value, (int, float)):
        return value
    if hasattr(value, "tobytes") and getattr(value, "dtype", None) != object and getattr(value, "size", 1 << 30) <= 1 << 16:
        return (str(value.dtype), value.shape, value.tobytes())
    return None


def _pick_min(keys: list, values: list) -> Any:
    """The value at the least key, the last such on ties; element-wise when any is an array."""
    if any(_is_array(x) for x in keys + values):
        return _numpy_pick_min(keys, values)
    best = 0
    for i, k in enumerate(keys):
        if k <= keys[best]:
            best = i
    return values[best]


def _numpy_pick_min(keys: list, values: list) -> Any:
    """:func:`_pick_min` over numpy arrays (broadcast together), element by element."""
    import numpy as np

    arrays = np.broadcast_arrays(*keys, *values)
    keys_a, values_a = np.stack(arrays[:len(keys)]), np.stack(arrays[len(keys):])
    last = len(keys) - 1 - np.argmin(keys_a[::-1], axis=0)
    return np.take_along_axis(values_a, last[None, ...], axis=0)[0]


def _sympy_pick(env: Mapping[str, Any], plain: Callable[[Mapping[str, Any]], Any], call: ast.Call) -> Any:
    """A ``pick_min`` under sympy: its number when every value in ``env`` is one, else an
    implemented function (sympy's ``implemented_function``: lambdify and evalf call ``plain``)
    of the symbolic values, described in :data:`PICK_MIN_SEARCHES`."""
    import sympy

    env = {n: sympy.sympify(v) for n, v in env.items()}
    numbers = {n: _plain_number(v) for n, v in env.items() if v.is_number}
    free = sorted((n for n in env if n not in numbers))
    if not free:
        return _sympy_constant(plain(numbers))
    key = (call, tuple(sorted(numbers.items())), tuple(free))
    if key not in _PICK_FUNCTIONS:
        from sympy.utilities.lambdify import implemented_function

        name = f"pick_min_{len(_PICK_FUNCTIONS) + 1}"
        _PICK_FUNCTIONS[key] = implemented_function(name, lambda *xs: plain({**numbers, **dict(zip(free, xs))}))
        PICK_MIN_SEARCHES[name] = PickSearch(name, ast.unparse(call), tuple(free), numbers)
    return _PICK_FUNCTIONS[key](*(env[n] for n in free))


@dataclass(frozen=True)
class PickSearch:
    """What a ``pick_min_N`` in a closed form stands for: the table's ``pick_min`` formula, whose
    names ``arguments`` are the function's arguments in order and the others are ``inputs``."""

    name: str
    formula: str
    arguments: tuple[str, ...]
    inputs: Mapping[str, Any]

    def describe(self) -> str:
        fixed = ", ".join(f"{n} = {v:g}" for n, v in sorted(self.inputs.items()))
        return (f"{self.name}({', '.join(self.arguments)}): a search in the table's formula (pick_min over "
                f"candidate shapes, computed, not spelled out) at {fixed}")

    def as_dict(self) -> dict[str, Any]:
        return {"formula": self.formula, "arguments": list(self.arguments), "inputs": dict(self.inputs)}


_PICK_FUNCTIONS: dict[tuple, Any] = {}
"""One implemented function per search (its syntax node) and fixed inputs, so that equal ones (a
model's layers) add up; numbered in order of first use."""
PICK_MIN_SEARCHES: dict[str, PickSearch] = {}
"""``pick_min_N`` -> what it stands for, for closed-form output."""


def _plain_number(v: Any) -> Any:
    """A sympy number as a Python int (whole) or float."""
    return int(v) if v.is_Integer else float(v)


def lambdify_numpy(expr: Any, symbols: Any) -> Callable[..., Any]:
    """A numpy function of ``symbols`` computing the sympy ``expr`` (e.g. a total over ops as a
    function of ``T``), for vectorized sweeps. ``Min``/``Max`` broadcast element-wise, and
    ``log(x)/log(2)`` (how sympy writes ``log2``) is computed as ``numpy.log2(x)``, which is exact
    at powers of two (in floating point ``ceil(log(2**29)/log(2))`` is 30)."""
    import sympy
    from sympy.printing.numpy import NumPyPrinter

    inv_log2 = sympy.Pow(sympy.log(2), -1)

    class _Printer(NumPyPrinter):
        def _print_Mul(self, e: Any) -> str:
            # log(x)/log(2) -> numpy.log2(x), what sympy.codegen's log2_opt rewrites, but while
            # printing: its pattern search over a whole table's sum took most of a sweep
            factors = list(e.args)
            log = next((a for a in factors if isinstance(a, sympy.log)), None) if inv_log2 in factors else None
            if log is None:
                return super()._print_Mul(e)
            factors.remove(inv_log2)
            factors.remove(log)
            out = f"{self._module_format('numpy.log2')}({self._print(log.args[0])})"
            return out if not factors else f"{out}*{self.parenthesize(sympy.Mul(*factors), 50)}"

        def _nested(self, fn: str, args: Any) -> str:
            out = self._print(args[0])
            for arg in args[1:]:
                out = f"{self._module_format('numpy.' + fn)}({out}, {self._print(arg)})"
            return out

        def _print_Min(self, e: Any) -> str:
            return self._nested("minimum", e.args)

        def _print_Max(self, e: Any) -> str:
            return self._nested("maximum", e.args)

    printer = _Printer({"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": True})
    return sympy.lambdify(symbols, sympy.sympify(expr), modules="numpy", printer=printer)
