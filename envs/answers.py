"""Checking final answers against references: numbers (with commas, fractions, percent, trailing units),
``\\boxed{...}`` and ``<answer>`` forms, and exact strings. Shared by every env with verifiable answers.

Grading sees text a model (or a stranger, through the env server) wrote, so its cost is linear in the
answer's length and it never raises on a number, however long:

- Numbers are read as `decimal.Decimal` in a context that traps nothing: decimal strings convert in
  linear time (Python's ``int(str)`` is quadratic and refuses more than 4,300 digits; ``float`` overflows;
  ``Fraction`` inherits both), an exponent out of range becomes an infinity or NaN instead of an error,
  and a fraction is divided at 60 significant digits, far finer than any grading tolerance.
- Every pattern is anchored so that a failed match cannot restart inside the same run of digits (a
  lookbehind), and its quantifiers are possessive, so no pattern backtracks: ``(-?\\d+)\\s*/`` over
  40,000 digits without a slash used to try every start position against the rest of the run, which is
  quadratic.
"""

from __future__ import annotations

import math
import re
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, localcontext

from agentgym.parsing import extract_boxed

_NUMBER = re.compile(r"-?(?:\d[\d,]*+(?:\.\d++)?+|\.\d++)(?:[eE][-+]?\d++)?+")
_FRACTION = re.compile(r"(?<!\d)(-?\d++)\s*+/\s*+(\d++)")
_LATEX_FRAC = re.compile(r"\\[dt]?frac\{(-?\d++)\}\{(\d++)\}")
_SPACES = re.compile(r"\s+")

# Arithmetic on answers: 60 significant digits, exponents as wide as decimal allows, no signal trapped
# (overflow gives an infinity, an impossible conversion gives NaN; neither raises).
_CTX = Context(prec=60, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[])


def final_answer_text(answer: str) -> str:
    """The part of an answer to grade: the last ``\\boxed{}`` if present, else the text itself."""
    boxed = extract_boxed(answer)
    return (boxed if boxed is not None else answer).strip()


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    found = None
    for found in pattern.finditer(text):  # noqa: B007 - only the last match is wanted
        pass
    return found


def _decimal(digits: str) -> Decimal:
    with localcontext(_CTX):
        return Decimal(digits)  # exact, linear in the length; NaN rather than an error when impossible


def parse_value(text: str) -> Decimal | None:
    """The exact value of the last number in `text` ('1,234.5', '3/4', '\\frac{3}{4}', '-2e3', '12%' -> 12:
    percent is not applied since references are written the same way); None if there is none."""
    text = final_answer_text(text).replace("$", "").replace("\\!", "")
    for marker, pattern in (("frac{", _LATEX_FRAC), ("/", _FRACTION)):
        m = _last(pattern, text) if marker in text else None  # `in` is a fast scan; skip a regex pass
        if m is not None:
            num, den = _decimal(m.group(1)), _decimal(m.group(2))
            if not den.is_zero():
                return _CTX.divide(_CTX.plus(num), _CTX.plus(den))
    m = _last(_NUMBER, text)
    if m is None:
        return None
    value = _decimal(m.group(0).replace(",", ""))
    return None if value.is_nan() else value


def parse_number(text: str) -> float | None:
    """`parse_value` as a float (±inf beyond the float range)."""
    value = parse_value(text)
    return None if value is None else float(value)


def as_number(text: str) -> float | None:
    """A number only if the whole (boxed) text is one: '42', '-3.5', '1,000', '3/4', '\\frac{3}{4}', '$12'."""
    core = final_answer_text(text).replace("$", "").replace(",", "").strip().rstrip(".")
    if _NUMBER.fullmatch(core) or _FRACTION.fullmatch(core) or _LATEX_FRAC.fullmatch(core):
        return parse_number(core)
    return None


def numbers_match(got: float, want: float, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    return math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol)


def values_match(got: Decimal, want: Decimal, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    """`math.isclose` on decimals: |got - want| <= max(rel_tol * max(|got|, |want|), abs_tol)."""
    if got.is_nan() or want.is_nan():
        return False
    if got == want:
        return True
    if got.is_infinite() or want.is_infinite():
        return False
    with localcontext(_CTX):  # abs() and friends use the current context: make it ours
        diff = abs(got - want)
        scale = Decimal(repr(rel_tol)) * max(abs(got), abs(want))
        return diff <= max(scale, Decimal(repr(abs_tol)))


def _reference_value(reference: int | float) -> Decimal:
    # repr gives a float's shortest round-tripping digits: 0.1 is 0.1, not 0.1000000000000000055...
    return Decimal(reference) if isinstance(reference, int) else _decimal(repr(float(reference)))


def grade(answer: str, reference: str | float | int, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    """True if `answer` states `reference`: numerically when the reference is a number, else as a
    case- and space-insensitive string."""
    if isinstance(reference, (int, float)) and not isinstance(reference, bool):
        got = parse_value(answer)
        return got is not None and values_match(got, _reference_value(reference), rel_tol, abs_tol)
    ref = str(reference).strip()
    ref_value = parse_value(ref) if _NUMBER.fullmatch(ref.replace(",", "")) else None
    if ref_value is not None:
        got = parse_value(answer)
        return got is not None and values_match(got, ref_value, rel_tol, abs_tol)
    norm = lambda s: _SPACES.sub(" ", s.strip().lower().rstrip("."))  # noqa: E731
    return norm(final_answer_text(answer)) == norm(ref)
