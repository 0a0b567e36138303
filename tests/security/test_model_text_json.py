"""Siblings of issue 9's 5,000-digit integers and 100,000 nested brackets in the other JSON readers: a
model's tool call (an observation the model can read, never an exception) and user JSONL files (task
files, SFT token data: one clear error naming the line)."""

import pytest

from agentgym.jsonl import read_rows
from agentgym.parsing import HermesJSONParser, XMLTagParser

HOSTILE = {"digits": "1" * 5000, "nesting": "[" * 100_000 + "]" * 100_000}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hermes_tool_calls_with_hostile_json_become_parse_errors(name):
    value = HOSTILE[name]
    for text in (f'<tool_call>{{"name": "python", "arguments": {{"code": {value}}}}}</tool_call>',
                 f"<tool_call>{value}</tool_call>",
                 f'<tool_call>{{"name": "python", "arguments": "{value}"}}</tool_call>'):
        parsed = HermesJSONParser(["python"]).parse(text)
        assert parsed.calls == [] and parsed.errors and parsed.errors[0].kind == "parse_error"
        assert len(parsed.errors[0].message) < 300


@pytest.mark.parametrize("name", list(HOSTILE))
def test_xml_tool_calls_with_hostile_json_keep_the_text(name):
    parsed = XMLTagParser(["python"]).parse(f"<python>{{\"a\": {HOSTILE[name]}}}</python>")
    assert len(parsed.calls) == 1 and isinstance(parsed.calls[0].arguments, str)


@pytest.mark.parametrize("line, expect", [
    (b'{"a": ' + b"1" * 5000 + b"}", "digits"), (b"[" * 100_000 + b"]" * 100_000, "JSON"),
    (b'{"a": "\xff"}', "UTF-8"), (b"[1, 2]", "JSON object"),
])
def test_user_jsonl_with_hostile_lines_is_one_clear_error(tmp_path, line, expect):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"ok": 1}\n' + line + b"\n")
    with pytest.raises(ValueError, match=expect) as info:
        list(read_rows(path))
    assert ":2:" in str(info.value) and len(str(info.value)) < 300
