"""A real, small tool task: arithmetic and unit conversions whose exact answers need a calculator.

Small models get products like 17*23 wrong from memory; with the `calculator` tool they need not. Tasks
are generated from the episode seed, so the same seed always gives the same task, and the held-out split
draws from a disjoint seed range.
"""

from __future__ import annotations

import ast
import copy
import math
import operator
from typing import Any

import numpy as np

from agentgym.env import EnvLimits
from agentgym.envs.answers import grade
from agentgym.tool_env import ToolEnv
from agentgym.tools import ToolError, tool

# Linear conversions to a base unit per dimension (temperature is affine and handled apart).
UNITS: dict[str, tuple[str, float]] = {
    "m": ("length", 1.0), "km": ("length", 1000.0), "cm": ("length", 0.01), "mm": ("length", 0.001),
    "mi": ("length", 1609.344), "ft": ("length", 0.3048), "in": ("length", 0.0254), "yd": ("length", 0.9144),
    "kg": ("mass", 1.0), "g": ("mass", 0.001), "lb": ("mass", 0.45359237), "oz": ("mass", 0.028349523125),
    "l": ("volume", 1.0), "ml": ("volume", 0.001), "gal": ("volume", 3.785411784),
    "s": ("time", 1.0), "min": ("time", 60.0), "h": ("time", 3600.0), "day": ("time", 86400.0),
}
TEMPERATURES = {"c", "f", "k"}

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCS = {"sqrt": math.sqrt, "abs": abs, "round": round}
# Integers stay below 2**MAX_BITS (~3,000 digits): big-int arithmetic holds the GIL, so one unbounded
# `(9**99)**99**...` would freeze every thread of the process (an env server's other sessions with it).
MAX_BITS = 10_000


def _bits(x: float) -> int:
    return abs(x).bit_length() if isinstance(x, int) else 0


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 100:
            raise ToolError("Exponent too large (limit 100).")
        size = _bits(left) * abs(int(right)) if isinstance(node.op, ast.Pow) else _bits(left) + _bits(right)
        if size > MAX_BITS and isinstance(node.op, (ast.Pow, ast.Mult)):
            raise ToolError(f"Result too large (integers up to 2**{MAX_BITS}).")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and not node.keywords:
        args = [_evaluate(a) for a in node.args]
        if node.func.id == "round" and len(args) == 2 and abs(args[1]) > 100:  # round(x, -10**9) computes 10**10**9
            raise ToolError("round() takes at most 100 digits.")
        return _FUNCS[node.func.id](*args)
    raise ToolError(f"Unsupported expression element: {ast.dump(node)[:60]}. Use numbers, + - * / // % ** "
                    "and sqrt/abs/round.")


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression exactly.

    Args:
        expression: Arithmetic using numbers, + - * / // % ** and parentheses, e.g. "(17*23) - 4".
    """
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise ToolError(f"Not a valid expression: {e.msg}.") from None
    try:
        value = _evaluate(tree.body)
    except ZeroDivisionError:
        raise ToolError("Division by zero.") from None
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value)


@tool
def convert(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a quantity between units.

    Args:
        value: The number to convert.
        from_unit: Unit of the value: m, km, cm, mm, mi, ft, in, yd, kg, g, lb, oz, l, ml, gal, s, min, h, day, c, f, k.
        to_unit: Unit to convert to (same dimension).
    """
    a, b = from_unit.strip().lower(), to_unit.strip().lower()
    if a in TEMPERATURES and b in TEMPERATURES:
        kelvin = {"c": value + 273.15, "f": (value - 32) * 5 / 9 + 273.15, "k": value}[a]
        out = {"c": kelvin - 273.15, "f": (kelvin - 273.15) * 9 / 5 + 32, "k": kelvin}[b]
        return f"{out:.6g}"
    if a not in UNITS or b not in UNITS:
        bad = a if a not in UNITS else b
        raise ToolError(f"Unknown unit {bad!r}. Known: {sorted(UNITS) + sorted(TEMPERATURES)}.")
    if UNITS[a][0] != UNITS[b][0]:
        raise ToolError(f"Cannot convert {UNITS[a][0]} ({a}) to {UNITS[b][0]} ({b}).")
    return f"{value * UNITS[a][1] / UNITS[b][1]:.6g}"


class CalculatorEnv(ToolEnv):
    """Arithmetic and unit-conversion questions with exact answers; reward 1 for a correct answer."""

    instructions = ("Answer the question. Use the calculator tool for any arithmetic: do not compute in your "
                    "head. Then give only the final number as your answer.")

    TEST_SEED_OFFSET = 1_000_000_007  # held-out tasks come from a disjoint seed range

    @property
    def expert(self) -> str | None:
        """Scripted agent used by `agentgym check-env` (it writes the XML format only)."""
        return "agentgym.envs.calculator.expert:calculator_expert" if self.tool_format == "xml" else None

    def __init__(self, tool_format: str = "xml", limits: EnvLimits | dict | None = None,
                 render_mode: str | None = None, kinds: tuple[str, ...] = ("multiply", "expression", "convert"),
                 split: str = "train"):
        super().__init__([calculator, convert], tool_format=tool_format,
                         limits=limits or EnvLimits(max_turns=4), render_mode=render_mode)
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.kinds = tuple(kinds)
        self.split = split

    def sample_task(self, options: dict[str, Any] | None) -> dict[str, Any]:
        rng = self.np_random
        if self.split == "test":
            rng = np.random.default_rng(int(rng.integers(2**31)) + self.TEST_SEED_OFFSET)
        kind = self.kinds[int(rng.integers(len(self.kinds)))]
        if kind == "multiply":
            a, b = int(rng.integers(11, 99)), int(rng.integers(11, 99))
            return {"kind": kind, "question": f"What is {a}*{b}?", "answer": a * b, "expression": f"{a}*{b}"}
        if kind == "expression":
            a, b, c, d = (int(x) for x in rng.integers(2, 60, size=4))
            expr = f"({a}+{b})*{c}-{d}"
            return {"kind": kind, "question": f"Compute {expr}.", "answer": (a + b) * c - d, "expression": expr}
        pairs = [("mi", "km"), ("lb", "kg"), ("ft", "m"), ("gal", "l"), ("in", "cm"), ("h", "s"), ("c", "f")]
        src, dst = pairs[int(rng.integers(len(pairs)))]
        value = int(rng.integers(2, 200))
        answer = float(convert(value=value, from_unit=src, to_unit=dst))
        return {"kind": kind, "question": f"Convert {value} {src} to {dst}. Round to 2 decimals.",
                "answer": round(answer, 2), "value": value, "from_unit": src, "to_unit": dst}

    can_fork = True

    def fork(self) -> CalculatorEnv:
        """Pure-Python state (the task, the turn count, the rng): a deep copy is cheap and exact."""
        return copy.deepcopy(self)

    def score(self, answer: str) -> float:
        return 1.0 if grade(answer, float(self.task["answer"]), rel_tol=1e-6, abs_tol=0.0051) else 0.0
