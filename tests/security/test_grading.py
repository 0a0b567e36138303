"""Grading and parsing of text a stranger controls: every input gets a result, none raises or backtracks.
(The cost per character is measured in bench/bench_grading.py; tests never assert on time.)"""

from __future__ import annotations

import pytest

from agentgym.envs.answers import as_number, grade, parse_number
from agentgym.envs.calculator.env import CalculatorEnv
from agentgym.parsing import ToolCall, extract_boxed, make_parser
from agentgym.tools import ToolSet


def test_a_100000_digit_answer_is_graded_with_a_result():
    answer = "7" * 100_000
    assert grade(answer, 5) is False
    assert grade(answer, answer) is True  # the same number as a string reference: exact, not via float
    assert grade(answer[:-1] + "8", answer, rel_tol=0, abs_tol=0) is False
    assert parse_number(answer) == float("inf")


def test_a_5000_digit_fraction_is_graded_with_a_result():
    third = "1" * 5_000 + "/" + "3" * 5_000 + "0"  # 0.0333...
    assert grade(third, 1 / 30) is True
    assert grade(third, 0.5) is False
    half = "1" + "0" * 4_999 + "/" + "2" + "0" * 4_999
    assert grade(half, 0.5) and grade(f"\\boxed{{\\frac{{{half.split('/')[0]}}}{{{half.split('/')[1]}}}}}", "0.5")
    assert grade("7" * 5_000 + "/0", 5) is False  # division by zero is no number, not an error


@pytest.mark.parametrize("answer", ["1e999999999999999999999", "1e" + "9" * 50, "-1e-99999999999", "1" * 100_000 + "e5",
                                    "1,2," * 20_000, "." * 50_000, "-" * 50_000 + "5", "\\boxed{" * 20_000,
                                    "\\frac{" * 20_000, "1 / " * 20_000, "0." + "0" * 50_000 + "1"])
def test_pathological_answers_get_a_result(answer):
    assert grade(answer, 5) in (True, False)
    assert grade(answer, "five") in (True, False)
    as_number(answer)


def test_grading_keeps_its_meaning():
    assert grade("The answer is 1,234.5 km", 1234.5) and grade("3/4", 0.75) and grade("\\frac{3}{4}", "0.75")
    assert grade("-2e3", -2000) and grade("12%", 12) and grade("0.1", 0.1, 0, 0) and grade("x", "X.")
    assert not grade("0.1001", 0.1, 1e-6, 0) and grade("\\boxed{42}", 42) and grade("$12", 12)
    assert as_number("1,000") == 1000.0 and as_number("about 5") is None


def test_parsers_never_raise_or_rescan_on_hostile_text():
    hermes = make_parser("hermes", ["calculator"])
    assert hermes.parse("<answer>" * 20_000).answer is None
    assert hermes.parse("</tool_call>" * 10_000 + "<tool_call>" * 10_000).calls == []
    deep = hermes.parse("<tool_call>" + "[" * 100_000 + "</tool_call>")
    huge = hermes.parse('<tool_call>{"name": "calculator", "arguments": {"expression": ' + "1" * 5_000 + "}}</tool_call>")
    assert deep.errors and huge.errors and "JSON" in huge.errors[0].message
    xml = make_parser("xml", ["calculator"])
    assert xml.parse("<calculator>{\"a\": " + "1" * 5_000 + "}</calculator>").calls[0].name == "calculator"
    assert extract_boxed("\\boxed{" + "9" * 100_000) is None and extract_boxed("\\boxed{a{b}c}") == "a{b}c"


@pytest.mark.parametrize("expression", ["((9**99)**99)**99", "(10**99)**99 * (10**99)**99", "round(5, -10**9)",
                                        "1" * 5_000, "-(" * 300 + "1" + ")" * 300])
def test_calculator_refuses_unbounded_work_with_a_readable_error(expression):
    record = ToolSet([CalculatorEnv().toolset.tools["calculator"]]).call(ToolCall("calculator", {"expression": expression}))
    assert record.error_type is not None and record.output.startswith("Error:")


def test_the_env_grades_a_huge_answer_instead_of_failing():
    env = CalculatorEnv(limits={"max_action_chars": 200_000})
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("<answer>" + "7" * 5_000 + "/" + "3" * 5_000 + "</answer>")
    assert terminated and reward == 0.0
