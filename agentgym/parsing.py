"""Tool-call formats: turn the assistant's text into tool calls, a final answer, or a readable error.

Two formats ship: XML tags as in ARPO/IterResearch (``<python>code</python>``, ``<search>q</search>``,
``<answer>42</answer>``) and Hermes/Qwen JSON (``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``).
A parser never raises on model output: every problem becomes a `ParseError` whose message is written
for the model to read and fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class ToolCall:
    """One call found in the text. `arguments` is a dict, or the raw tag body (str) for XML calls whose
    body is not a JSON object; the tool layer maps a raw body onto the tool's first parameter."""

    name: str
    arguments: dict[str, Any] | str
    raw: str = ""


@dataclass
class ParseError:
    kind: str  # "parse_error" | "unknown_tool" (as in trajectory.ErrorType)
    message: str


@dataclass
class ParsedAction:
    calls: list[ToolCall] = field(default_factory=list)
    answer: str | None = None
    errors: list[ParseError] = field(default_factory=list)


class ToolCallParser(Protocol):
    """Finds tool calls in assistant text. `stop_strings` are where generation should pause for a tool."""

    name: str

    def parse(self, text: str) -> ParsedAction: ...

    def stop_strings(self) -> list[str]: ...

    def format_result(self, call: ToolCall, output: str) -> str: ...

    def describe(self, tool_schemas: list[dict]) -> str: ...


_BRACE = re.compile(r"[{}]")


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``, with nested braces balanced; None if there is none."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth = start + len("\\boxed{"), 1
    for brace in _BRACE.finditer(text, i):  # visits braces only: linear, and fast on long digit runs
        depth += 1 if brace.group() == "{" else -1
        if depth == 0:
            return text[i : brace.start()]
    return None


def tag_bodies(text: str, open_tag: str, close_tag: str):
    """The bodies of ``open_tag…close_tag`` pairs, left to right, each ending at the first close after its
    open (what the lazy pattern ``open(.*?)close`` finds, in linear time: that pattern rescans the rest
    of the text from every unclosed open tag)."""
    pos = 0
    while (i := text.find(open_tag, pos)) >= 0:
        j = text.find(close_tag, i + len(open_tag))
        if j < 0:
            return
        yield text[i + len(open_tag) : j]
        pos = j + len(close_tag)


class XMLTagParser:
    """ARPO/IterResearch tags. Each tool is a tag whose body is the argument (or a JSON object of arguments).

    The answer tag ends the episode. Tags of known tools must be closed and must not nest.
    """

    name = "xml"

    def __init__(self, tool_names: list[str], answer_tag: str = "answer", result_tag: str = "result"):
        self.tool_names = list(tool_names)
        self.answer_tag = answer_tag
        self.result_tag = result_tag
        tags = "|".join(re.escape(t) for t in [*self.tool_names, answer_tag])
        self._token = re.compile(rf"<(/?)({tags})>")

    def stop_strings(self) -> list[str]:
        return [f"</{t}>" for t in self.tool_names] + [f"</{self.answer_tag}>"]

    def parse(self, text: str) -> ParsedAction:
        out = ParsedAction()
        open_tag: str | None = None
        body_start = 0
        for m in self._token.finditer(text):
            closing, tag = m.group(1) == "/", m.group(2)
            if not closing:
                if open_tag is not None:
                    out.errors.append(
                        ParseError("parse_error", f"<{tag}> was opened inside <{open_tag}>; tags cannot be nested. "
                                   f"Close </{open_tag}> first.")
                    )
                    return out
                open_tag, body_start = tag, m.end()
            elif open_tag != tag:
                out.errors.append(ParseError("parse_error", f"</{tag}> closes a tag that was never opened."))
                return out
            else:
                body = text[body_start : m.start()]
                if tag == self.answer_tag:
                    out.answer = body.strip()
                else:
                    out.calls.append(ToolCall(name=tag, arguments=_json_object_or_text(body), raw=body))
                open_tag = None
        if open_tag is not None:
            out.errors.append(ParseError("parse_error", f"<{open_tag}> was opened but never closed with </{open_tag}>."))
        return out

    def format_result(self, call: ToolCall, output: str) -> str:
        return f"<{self.result_tag}>\n{output}\n</{self.result_tag}>"

    def describe(self, tool_schemas: list[dict]) -> str:
        lines = ["Tools (write a call as the tag shown; its result comes back in "
                 f"<{self.result_tag}></{self.result_tag}>):"]
        for schema in tool_schemas:
            fn = schema["function"]
            props = fn.get("parameters", {}).get("properties", {})
            if len(props) == 1:
                body = next(iter(props))
            else:  # several parameters: a JSON object of them
                body = json.dumps({p: f"<{spec.get('type', 'value')}>" for p, spec in props.items()})
            params = "; ".join(f"{p}: {spec.get('description', '')}" for p, spec in props.items())
            lines.append(f"<{fn['name']}>{body}</{fn['name']}> — {fn.get('description', '')} ({params})")
        lines.append(f"<{self.answer_tag}>...</{self.answer_tag}>: your final answer; this ends the task.")
        return "\n".join(lines)


def json_objects(text: str, max_attempts: int = 64) -> list[dict[str, Any]]:
    """The JSON objects embedded in free text (a model's reasoning around a JSON action), in order.

    Hostile text cannot crash or stall it: a candidate that is not valid JSON, nests too deeply or holds an
    integer beyond Python's digit limit is skipped, and at most `max_attempts` opening braces are tried (a
    failed decode can scan to the end of the text, so an unbounded search is quadratic)."""
    decoder, found, i, attempts = json.JSONDecoder(), [], text.find("{"), 0
    while i >= 0 and attempts < max_attempts:
        attempts += 1
        try:
            obj, end = decoder.raw_decode(text, i)
        except (ValueError, RecursionError):
            i = text.find("{", i + 1)
            continue
        if isinstance(obj, dict):
            found.append(obj)
        i = text.find("{", end)
    return found


def _json_object_or_text(body: str) -> dict[str, Any] | str:
    stripped = body.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except (ValueError, RecursionError):  # also a >4300-digit integer, or nesting too deep
            return body
        if isinstance(value, dict):
            return value
    return body


class HermesJSONParser:
    """Hermes/Qwen format: ``<tool_call>{"name": "calc", "arguments": {"expression": "1+1"}}</tool_call>``.

    A final answer is given in the answer tag (default ``<answer>``) or, with `bare_text_is_answer`,
    as a message with no tool call.
    """

    name = "hermes"

    def __init__(self, tool_names: list[str], answer_tag: str = "answer", bare_text_is_answer: bool = False):
        self.tool_names = list(tool_names)
        self.answer_tag = answer_tag
        self.bare_text_is_answer = bare_text_is_answer

    def stop_strings(self) -> list[str]:
        return ["</tool_call>", f"</{self.answer_tag}>"]

    def parse(self, text: str) -> ParsedAction:
        out = ParsedAction()
        if text.count("<tool_call>") != text.count("</tool_call>"):
            out.errors.append(ParseError("parse_error", "A <tool_call> was opened but not closed with </tool_call>."))
            return out
        for body in tag_bodies(text, "<tool_call>", "</tool_call>"):
            if "<tool_call>" in body:
                out.errors.append(ParseError("parse_error", "<tool_call> blocks cannot be nested."))
                return out
            call, err = self._parse_call(body)
            if err:
                out.errors.append(err)
            elif call:
                out.calls.append(call)
        answer = next(tag_bodies(text, f"<{self.answer_tag}>", f"</{self.answer_tag}>"), None)
        if answer is not None:
            out.answer = answer.strip()
        elif self.bare_text_is_answer and not out.calls and not out.errors and text.strip():
            out.answer = text.strip()
        return out

    def _parse_call(self, body: str) -> tuple[ToolCall | None, ParseError | None]:
        try:
            obj = json.loads(body.strip())
        except json.JSONDecodeError as e:
            return None, ParseError("parse_error", f"The tool call is not valid JSON ({e.msg} at line {e.lineno} "
                                    f"column {e.colno}). Write {{\"name\": ..., \"arguments\": {{...}}}}.")
        except (ValueError, RecursionError) as e:  # a >4300-digit integer, or nesting too deep
            return None, ParseError("parse_error", f"The tool call's JSON cannot be read ({str(e)[:80]}).")
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return None, ParseError("parse_error", 'The tool call must be a JSON object with a string "name".')
        args = obj.get("arguments", {})
        if isinstance(args, str):  # some models double-encode arguments
            try:
                args = json.loads(args)
            except (ValueError, RecursionError):
                return None, ParseError("parse_error", '"arguments" must be a JSON object.')
        if not isinstance(args, dict):
            return None, ParseError("parse_error", '"arguments" must be a JSON object.')
        return ToolCall(name=obj["name"], arguments=args, raw=body), None

    def format_result(self, call: ToolCall, output: str) -> str:
        return f"<tool_response>\n{output}\n</tool_response>"

    def describe(self, tool_schemas: list[dict]) -> str:
        schemas = "\n".join(json.dumps(s["function"]) for s in tool_schemas)
        return (
            "You may call tools. Each call is a JSON object inside <tool_call></tool_call> tags:\n"
            '<tool_call>{"name": <tool name>, "arguments": <arguments object>}</tool_call>\n'
            f"Available tools:\n{schemas}\n"
            f"Give your final answer inside <{self.answer_tag}></{self.answer_tag}>."
        )


PARSERS = {"xml": XMLTagParser, "hermes": HermesJSONParser}


def make_parser(fmt: str, tool_names: list[str], **kwargs: Any) -> ToolCallParser:
    try:
        cls = PARSERS[fmt]
    except KeyError:
        raise ValueError(f"unknown tool-call format {fmt!r}; choose one of {sorted(PARSERS)}") from None
    return cls(tool_names, **kwargs)
