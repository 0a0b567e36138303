"""JSON actions of the GUI envs (Android, MiniWoB++) from hostile model text: deep nesting, integers past
Python's digit limit and brace floods become an action error the model can read, never an exception that
ends the path, and the search for an embedded JSON object stays bounded."""

import pytest

from agentgym.envs.android.actions import ActionError as AndroidActionError
from agentgym.envs.android.actions import parse_action as parse_android
from agentgym.envs.browser.actions import ActionError as BrowserActionError
from agentgym.envs.browser.actions import parse_action as parse_browser
from agentgym.parsing import json_objects

HOSTILE = {
    "deep list": "[" * 100_000,
    "deep object": '{"a":' * 50_000,
    "brace flood in an unterminated string": '{"a":"' + "{" * 90_000,
    "5,000-digit integer": '{"action_type": "click", "index": ' + "9" * 5000 + "}",
    "nested call": "click(" + "[" * 50_000 + "]" * 50_000 + ")",
    "huge call argument": "click(" + "9" * 50_000 + ")",
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize("parse, error", [(parse_android, AndroidActionError), (parse_browser, BrowserActionError)],
                         ids=["android", "browser"])
def test_hostile_action_text_is_an_action_error(parse, error, text):
    with pytest.raises(error):
        parse(text)


def test_json_objects_skips_bad_candidates_and_keeps_good_ones():
    text = 'think {"a": ' + "9" * 5000 + '} then {"x": [' + "[" * 3000 + '} and finally {"action_type": "wait"}'
    assert json_objects(text) == [{"action_type": "wait"}]


def test_json_objects_tries_a_bounded_number_of_braces():
    # Every brace starts a candidate that fails only at the end of the text: unbounded, this is quadratic.
    text = '{"a":"' + "{" * 200_000 + ' {"action_type": "wait"}'
    assert json_objects(text, max_attempts=64) == []
    assert json_objects('{"b": 1} {"c": 2}', max_attempts=1) == [{"b": 1}]
