"""Checking final answers against references: numbers (with commas, fractions, percent, trailing units),
``\\boxed{...}`` and ``<answer>`` forms, and exact strings. Shared by every env with verifiable answers."""

from __future__ import annotations

import math
import re
from fractions import Fraction

from agentgym.parsing import extract_boxed

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")
_FRACTION = re.compile(r"(-?\d+)\s*/\s*(\d+)")
_LATEX_FRAC = re.compile(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}")


def final_answer_text(answer: str) -> str:
    """The part of an answer to grade: the last ``\\boxed{}`` if present, else the text itself."""
    boxed = extract_boxed(answer)
    return (boxed if boxed is not None else answer).strip()


def parse_number(text: str) -> float | None:
    """The value of the last number in `text`: '1,234.5', '3/4', '\\frac{3}{4}', '-2e3', '12%' -> 0.12 is NOT
    applied (percent stays 12) since references are written the same way."""
    text = final_answer_text(text).replace("$", "").replace("\\!", "")
    for pattern in (_LATEX_FRAC, _FRACTION):
        found = pattern.findall(text)
        if found:
            num, den = found[-1]
            if int(den) != 0:
                return float(Fraction(int(num), int(den)))
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def as_number(text: str) -> float | None:
    """A number only if the whole (boxed) text is one: '42', '-3.5', '1,000', '3/4', '\\frac{3}{4}', '$12'."""
    core = final_answer_text(text).replace("$", "").replace(",", "").strip().rstrip(".")
    if _NUMBER.fullmatch(core) or _FRACTION.fullmatch(core) or _LATEX_FRAC.fullmatch(core):
        return parse_number(core)
    return None


def numbers_match(got: float, want: float, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    return math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol)


def grade(answer: str, reference: str | float | int, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    """True if `answer` states `reference`: numerically when the reference is a number, else as a
    case- and space-insensitive string."""
    if isinstance(reference, (int, float)) and not isinstance(reference, bool):
        got = parse_number(answer)
        return got is not None and numbers_match(got, float(reference), rel_tol, abs_tol)
    ref = str(reference).strip()
    ref_number = parse_number(ref) if _NUMBER.fullmatch(ref.replace(",", "")) else None
    if ref_number is not None:
        return grade(answer, ref_number, rel_tol, abs_tol)
    norm = lambda s: re.sub(r"\s+", " ", s.strip().lower().rstrip("."))  # noqa: E731
    return norm(final_answer_text(answer)) == norm(ref)
