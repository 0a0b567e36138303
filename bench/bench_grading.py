"""Answer-grading time vs answer length: the old grader (regexes that backtrack from every start position,
``int(str)``/``Fraction``/``float``) against the new one (anchored possessive patterns, `decimal`), side by
side at 1k, 10k and 100k characters, with their ratio and the new grader's growth per 10x (linear = ~10x).

The old grader is quadratic on long numbers: where its predicted time exceeds ``--old-budget`` seconds it is
not run and the line says so (the prediction, marked ``~``, extrapolates its last two measurements with
their own growth exponent, quadratic when only one exists).
Usage: python bench/bench_grading.py [--quick] [--old-budget SECONDS]
"""

from __future__ import annotations

import argparse
import math
import re
import time
from fractions import Fraction

from agentgym.envs.answers import grade
from agentgym.parsing import extract_boxed

SIZES = (1_000, 10_000, 100_000, 1_000_000)
REFERENCE = 1234.5

# ---- the grader as it was before the fix (kept here only to measure it) ------------------------------
_OLD_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+")
_OLD_FRACTION = re.compile(r"(-?\d+)\s*/\s*(\d+)")
_OLD_LATEX_FRAC = re.compile(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}")


def _old_parse_number(text: str) -> float | None:
    boxed = extract_boxed(text)
    text = (boxed if boxed is not None else text).strip().replace("$", "").replace("\\!", "")
    for pattern in (_OLD_LATEX_FRAC, _OLD_FRACTION):
        found = pattern.findall(text)
        if found:
            num, den = found[-1]
            if int(den) != 0:
                return float(Fraction(int(num), int(den)))
    found = _OLD_NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def old_grade(answer: str, reference: float) -> bool:
    got = _old_parse_number(answer)
    return got is not None and math.isclose(got, reference, rel_tol=1e-6, abs_tol=1e-9)


# ---- inputs ---------------------------------------------------------------------------------------------
def answers(n: int) -> dict[str, str]:
    half = (n - 1) // 2
    return {"digits": "7" * n,
            "fraction": "7" * half + "/" + "3" * (n - 1 - half),
            "prose": ("the sum is 12 apples and 3 pears, " * (n // 34 + 1))[:n]}


def timed(fn, text: str, min_total_s: float) -> tuple[float, str]:
    """Best time of repeated calls (at least one, more until `min_total_s` is spent) and the outcome."""
    best, spent, outcome = math.inf, 0.0, ""
    while spent < min_total_s or best == math.inf:
        t = time.perf_counter()
        try:
            outcome = str(fn(text, REFERENCE))
        except Exception as e:  # the old grader raises on long numbers; that is one of its bugs
            outcome = f"error: {type(e).__name__}"
        dt = time.perf_counter() - t
        best, spent = min(best, dt), spent + dt
        if dt > 1.0:
            break
    return best, outcome


def predict(points: list[tuple[int, float]], n: int) -> float:
    """Time at length `n` from earlier (length, time) points: their growth exponent, clamped to [1, 2]."""
    if not points:
        return 0.0
    exponent = 2.0
    if len(points) >= 2:
        (n1, t1), (n2, t2) = points[-2:]
        exponent = min(2.0, max(1.0, math.log(t2 / t1) / math.log(n2 / n1)))
    n0, t0 = points[-1]
    return t0 * (n / n0) ** exponent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tighter budget for the old grader, fewer repeats")
    ap.add_argument("--old-budget", type=float, default=None, help="longest predicted old-grader run (s)")
    args = ap.parse_args()
    budget = args.old_budget if args.old_budget is not None else (2.0 if args.quick else 30.0)
    repeat_s = 0.05 if args.quick else 0.3

    print(f"{'input':9} {'chars':>8} {'old':>12} {'new':>10} {'old/new':>9}  new outcome / old outcome")
    for kind in ("digits", "fraction", "prose"):
        new_times: list[float] = []
        old_points: list[tuple[int, float]] = []
        for n in SIZES:
            text = answers(n)[kind]
            new_t, new_out = timed(grade, text, repeat_s)
            new_times.append(new_t)
            predicted = predict(old_points, n)
            if predicted <= budget:
                old_t, old_out = timed(old_grade, text, repeat_s)
                old_points.append((n, old_t))
                old_col, ratio = f"{old_t * 1e3:10.2f}ms", f"{old_t / new_t:8.0f}x"
            else:
                old_out = f"not run (predicted ~{predicted:.0f} s > budget {budget:g} s)"
                old_col, ratio = f"~{predicted * 1e3:9.0f}ms", f"~{predicted / new_t:7.0f}x"
            print(f"{kind:9} {n:8d} {old_col:>12} {new_t * 1e3:8.3f}ms {ratio:>9}  {new_out} / {old_out}")
        growth = ", ".join(f"{b / a:.1f}x" for a, b in zip(new_times, new_times[1:]))
        print(f"{kind:9} new grader growth per 10x length: {growth} (linear = 10x, quadratic = 100x)")


if __name__ == "__main__":
    main()
