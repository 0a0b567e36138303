"""Issue 9 item 9: model and env text printed to a terminal has its control characters rendered visibly
(OSC titles and hyperlinks, CSI screen clears, C1 controls, BEL, backspace, CR, bidi overrides); newlines
and tabs are kept."""

import io

import pytest
from rich.console import Console
from typer.testing import CliRunner

from agentgym.cli import app, summary_table
from agentgym.printable import printable
from agentgym.store import TrajectoryStore
from agentgym.trajectory import Observation, ToolCallRecord, TrajectoryTree, Turn
from agentgym.viewer.terminal import tree_renderable, trees_table

runner = CliRunner()
EVIL = ("\x1b]0;owned title\x07\x1b[2J\x1b[H\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\"
        "\x9b31m\x9d8;;x\x9c\x08\x08\rback\u202eoverride\x00nul\x7fdel")
RAW = ["\x1b", "\x07", "\x9b", "\x9d", "\x9c", "\x08", "\r", "\u202e", "\x00", "\x7f"]


def hostile_tree() -> TrajectoryTree:
    tree = TrajectoryTree(id="t" + EVIL[:12], env_id="agentgym/Calculator-v0", task={"question": "Q " + EVIL},
                          initial_observation=Observation(text="reset " + EVIL, memory="mem " + EVIL))
    root = tree.add(Turn(id=0, action_text="act " + EVIL, action_ids=[1, 2], truncated=True,
                         truncated_reason="why " + EVIL,
                         tool_calls=[ToolCallRecord(name="tool" + EVIL, arguments={"code": EVIL}, output="out " + EVIL),
                                     ToolCallRecord(name="t2", error_type="tool_error", error="err " + EVIL)],
                         observation=Observation(text="obs " + EVIL, role="tool" + EVIL)))
    tree.add(Turn(id=0, parent=root.id, action_text="line one\n\tindented " + EVIL))
    tree.final_rewards[1] = 1.0
    return tree


def assert_inert(text: str) -> None:
    for ch in RAW:
        assert ch not in text, (repr(ch), text[:2000])
    assert "\\x1b" in text  # shown, not dropped


def render(renderable) -> str:
    buf = io.StringIO()
    Console(file=buf, width=200, force_terminal=False, color_system=None).print(renderable)
    return buf.getvalue()


def test_printable_keeps_newlines_and_tabs_and_shows_the_rest():
    out = printable("a\nb\tc" + EVIL)
    assert out.startswith("a\nb\tc\\x1b]0;owned title\\a\\x1b[2J")
    assert_inert(out)
    assert printable("plain ünïcode ✓") == "plain ünïcode ✓"


def test_tree_and_table_rendering_is_inert():
    tree = hostile_tree()
    for limit in (300, None):
        text = render(tree_renderable(tree, limit=limit))
        assert_inert(text)
        line = next(i for i, row in enumerate(text.splitlines()) if "line one" in row)
        assert "indented" in text.splitlines()[line + 1]  # the newline is kept
    assert_inert(render(trees_table([tree, tree])))


@pytest.mark.parametrize("args", [[], ["--tree", "#0"], ["--full"], ["--limit", "2"]])
def test_agentgym_replay_output_is_inert(tmp_path, args):
    store = TrajectoryStore(tmp_path / "t.jsonl")
    store.append(hostile_tree())
    store.append(hostile_tree().model_copy(update={"id": "second" + EVIL}))
    result = runner.invoke(app, ["replay", str(store.path), *args])
    assert result.exit_code == 0, result.output
    assert_inert(result.output)


def test_cli_messages_with_hostile_input_are_inert(tmp_path):
    result = runner.invoke(app, ["check-env", "agentgym/Calc" + EVIL])
    assert result.exit_code == 2
    assert_inert(result.output)
    result = runner.invoke(app, ["replay", str(tmp_path / ("missing" + EVIL.replace("\x00", "")))])
    assert result.exit_code == 2
    assert_inert(result.output)
    store = TrajectoryStore(tmp_path / "t.jsonl")
    store.append(hostile_tree())
    result = runner.invoke(app, ["replay", str(store.path), "--tree", "nope" + EVIL])
    assert result.exit_code == 2
    assert_inert(result.output)


def test_run_summary_title_is_inert():
    assert_inert(render(summary_table([hostile_tree()], {}, title="env " + EVIL)))
