"""Tools may return structured data beside the text the model sees; it is kept in the call's record."""

from agentgym.parsing import ToolCall
from agentgym.tools import ToolResult, ToolSet, tool
from agentgym.trajectory import ToolCallRecord


@tool
def lookup(query: str) -> ToolResult:
    """Look something up.

    Args:
        query: what to look up
    """
    return ToolResult("x" * 50, {"results": [{"id": query}]})


@tool
def plain(query: str) -> str:
    """Plain text.

    Args:
        query: anything
    """
    return query


def test_structured_data_is_recorded_beside_capped_text():
    tools = ToolSet([lookup, plain], max_output_chars=10)
    rec = tools.call(ToolCall("lookup", {"query": "doc-1"}))
    assert rec.data == {"results": [{"id": "doc-1"}]} and rec.output.startswith("x" * 10 + "\n[truncated 40")
    assert tools.call(ToolCall("plain", {"query": "hi"})).data is None
    # the record round-trips through JSON, as the store writes it
    assert ToolCallRecord.model_validate_json(rec.model_dump_json()) == rec
