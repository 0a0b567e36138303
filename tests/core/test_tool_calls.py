"""Tool-call parsing and tool execution: every malformed call becomes a readable error, never an exception."""

import time

import pytest

import agentgym
from agentgym.parsing import HermesJSONParser, XMLTagParser, extract_boxed
from agentgym.tools import ToolError, ToolSet, tool
from agentgym.parsing import ToolCall


@tool
def add(a: int, b: int) -> str:
    """Add two integers.

    Args:
        a: First addend.
        b: Second addend.
    """
    return str(a + b)


@tool(timeout_s=0.3)
def hang(seconds: float) -> str:
    """Sleep.

    Args:
        seconds: How long.
    """
    time.sleep(seconds)
    return "woke"


@tool
def explode(x: str) -> str:
    """Raise.

    Args:
        x: Anything.
    """
    raise RuntimeError("boom " + x)


def test_schema_comes_from_type_hints_and_docstring():
    fn = add.schema["function"]
    assert fn["name"] == "add"
    assert fn["parameters"]["properties"]["a"] == {"type": "integer", "description": "First addend."}
    assert fn["parameters"]["required"] == ["a", "b"]


@pytest.fixture
def tools():
    return ToolSet([add, hang, explode])


def test_good_call(tools):
    r = tools.call(ToolCall("add", {"a": 2, "b": 3}))
    assert (r.output, r.error_type) == ("5", None)
    assert r.latency_s >= 0


def test_unknown_tool(tools):
    r = tools.call(ToolCall("mul", {"a": 2}))
    assert r.error_type == "unknown_tool" and "Available tools" in r.output and "add" in r.output


def test_missing_argument(tools):
    r = tools.call(ToolCall("add", {"a": 2}))
    assert r.error_type == "bad_arguments" and "b" in r.error and "Missing" in r.error


def test_mistyped_argument(tools):
    r = tools.call(ToolCall("add", {"a": 2, "b": "three"}))
    assert r.error_type == "bad_arguments" and "b" in r.error and "integer" in r.error


def test_extra_argument_rejected(tools):
    r = tools.call(ToolCall("add", {"a": 1, "b": 2, "timeout": 1e9}))
    assert r.error_type == "bad_arguments" and "timeout" in r.error


def test_tool_exception_becomes_observation(tools):
    r = tools.call(ToolCall("explode", {"x": "now"}))
    assert r.error_type == "tool_error" and "RuntimeError: boom now" in r.output


def test_hung_tool_is_cancelled_at_timeout(tools):
    start = time.perf_counter()
    r = tools.call(ToolCall("hang", {"seconds": 30}))
    assert r.error_type == "timeout" and "0.3" in r.error
    assert time.perf_counter() - start < 10  # bound proves the timeout fired; not a speed assertion


def test_tool_error_type_is_kept(tools):
    @tool
    def denied(x: str) -> str:
        """No.

        Args:
            x: Anything.
        """
        raise ToolError("not allowed", "denied")

    r = ToolSet([denied]).call(ToolCall("denied", "anything"))
    assert (r.error_type, r.error) == ("denied", "not allowed")


class TestXMLParser:
    p = XMLTagParser(["python", "search"])

    def test_call_and_answer(self):
        out = self.p.parse("think <python>print(1)</python>")
        assert [c.name for c in out.calls] == ["python"] and out.calls[0].arguments == "print(1)"
        assert self.p.parse("<answer> 42 </answer>").answer == "42"

    def test_json_body_is_arguments(self):
        out = self.p.parse('<search>{"query": "x"}</search>')
        assert out.calls[0].arguments == {"query": "x"}

    def test_unclosed_tag(self):
        out = self.p.parse("<python>print(1)")
        assert out.errors and "never closed" in out.errors[0].message

    def test_nested_tags(self):
        out = self.p.parse("<python><search>q</search></python>")
        assert out.errors and "nested" in out.errors[0].message

    def test_stray_closing_tag(self):
        assert "never opened" in self.p.parse("</python>").errors[0].message

    def test_unknown_tags_are_text(self):
        out = self.p.parse("<foo>bar</foo>")
        assert not out.calls and not out.errors and out.answer is None

    def test_boxed(self):
        assert extract_boxed(r"so \boxed{\frac{1}{2}} done") == r"\frac{1}{2}"
        assert extract_boxed("nothing") is None


class TestHermesParser:
    p = HermesJSONParser(["add"])

    def test_call(self):
        out = self.p.parse('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>')
        assert out.calls[0].name == "add" and out.calls[0].arguments == {"a": 1, "b": 2}

    def test_double_encoded_arguments(self):
        out = self.p.parse('<tool_call>{"name": "add", "arguments": "{\\"a\\": 1}"}</tool_call>')
        assert out.calls[0].arguments == {"a": 1}

    def test_bad_json(self):
        out = self.p.parse('<tool_call>{"name": "add", "arguments": {a: 1}}</tool_call>')
        assert out.errors[0].kind == "parse_error" and "not valid JSON" in out.errors[0].message

    def test_missing_name(self):
        assert '"name"' in self.p.parse('<tool_call>{"arguments": {}}</tool_call>').errors[0].message

    def test_unclosed(self):
        assert "not closed" in self.p.parse('<tool_call>{"name": "add"').errors[0].message

    def test_nested(self):
        out = self.p.parse("<tool_call><tool_call>{}</tool_call></tool_call>")
        assert out.errors


@pytest.mark.parametrize("env_id", ["agentgym/Calculator-v0", "agentgym/CalculatorHermes-v0"])
@pytest.mark.parametrize("action, expect", [
    ("", "empty"),
    (b"\xff\xfe bad bytes", "not valid UTF-8"),
    ("\ud800 lone surrogate", "invalid character"),
    ("x" * 1_000_000 + "y", "limit"),
    ("<calculator>1+1", "never closed"),
    ("<calculator><calculator>1</calculator></calculator>", "nested"),
    ('<tool_call>{"name": "calculator", "arguments": {oops}}</tool_call>', "not valid JSON"),
    ('<tool_call>{"name": "nope", "arguments": {}}</tool_call>', "Unknown tool"),
    ('<tool_call>{"name": "convert", "arguments": {"value": 1}}</tool_call>', "Missing"),
    ('<tool_call>{"name": "convert", "arguments": {"value": "a lot", "from_unit": "m", "to_unit": "km"}}</tool_call>',
     "value"),
])
def test_env_turns_bad_actions_into_error_observations(env_id, action, expect):
    env = agentgym.make(env_id)
    env.reset(seed=0)
    xml_only = expect in ("never closed", "nested")
    json_only = action.startswith("<tool_call>") if isinstance(action, str) else False
    if (xml_only and "Hermes" in env_id) or (json_only and "Hermes" not in env_id):
        pytest.skip("format-specific case")
    obs, reward, terminated, truncated, info = env.step(action)
    assert expect in obs, obs[:300]
    assert not terminated and reward == 0.0
    assert info["errors"] >= 1
    # the episode goes on: a good action still works afterwards
    obs, *_ = env.step('<tool_call>{"name": "calculator", "arguments": {"expression": "6*7"}}</tool_call>'
                       if "Hermes" in env_id else "<calculator>6*7</calculator>")
    assert "42" in obs
