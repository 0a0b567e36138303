"""The uiautomator dump parser on realistic dumps (nested scrollables, empty bounds, non-ASCII and
entity-escaped text, missing attributes, several windows, the tty trailer) and on malformed ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agentgym.envs.android.apps import make_apps
from agentgym.envs.android.phone import SimPhone
from agentgym.envs.android.state import seed_world
from agentgym.envs.android.ui import describe, elements, hit_test, is_tappable, to_xml
from agentgym.envs.android.uiautomator import DumpError, parse_dump

FIXTURES = Path(__file__).parent / "fixtures" / "android"


def dump(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_pixel_settings_dump_with_nested_scrollables_and_tty_trailer():
    root = parse_dump(dump("pixel_settings_nested_scroll.xml"))
    scrollables = [n for n in root.walk() if n.scrollable]
    assert [n.cls.rsplit(".", 1)[-1] for n in scrollables] == ["ScrollView", "RecyclerView"]
    outer, inner = scrollables
    assert inner in list(outer.walk())  # the RecyclerView is inside the ScrollView
    shown = elements(root)
    texts = [n.text for n in shown if n.text]
    assert texts[:4] == ["Search settings", "Network & internet", "Mobile, Wi\u2011Fi, hotspot", "Connected devices"]
    assert all(n.resource_id != "com.android.settings:id/homepage_title" for n in shown)  # [0,0][0,0]: not listed
    avatar = next(n for n in shown if n.content_desc)
    assert avatar.content_desc == "Change account & profile" and avatar.bounds == (926, 209, 1003, 286)
    # tapping the title of a row lands on the clickable row around it, as on the device
    row = hit_test(root, *next(n for n in shown if n.text == "Connected devices").center, is_tappable)
    assert row is not None and row.clickable and row.bounds == (0, 583, 1080, 814)


def test_non_ascii_text_entities_newlines_and_empty_bounds():
    root = parse_dump(dump("messages_non_ascii.xml").encode("utf-8"))
    texts = [n.text for n in root.walk() if n.text]
    assert "Zoë Müller-Łukasiewicz" in texts and "Привет! Как дела? 😀" in texts and "日本語のテキスト、大丈夫です。" in texts
    assert 'Café à 8h — d’accord? <3 & "à bientôt"' in texts
    assert "line one\nline two" in texts and "مرحبا" in texts
    listing = describe(elements(root))
    assert '"line one\\nline two"' in listing  # one element per line, whatever the text holds
    assert "Photo: off screen" not in listing  # empty bounds
    compose = next(n for n in root.walk() if n.editable)
    assert compose.focused and compose.text == "مرحبا"
    send = next(n for n in root.walk() if n.content_desc == "Send SMS")
    assert not send.enabled and "disabled" in listing
    nested = [n for n in root.walk() if n.scrollable]
    assert len(nested) == 2 and nested[1] in list(nested[0].walk())


def test_old_device_dump_missing_attributes_and_two_windows():
    root = parse_dump(dump("old_device_missing_attrs.xml"))
    assert root.cls == "hierarchy" and len(root.children) == 2 and root.bounds == (0, 0, 1920, 1080)
    gallery = next(n for n in root.walk() if n.text == "Gallery")
    assert gallery.bounds == (0, 0, 0, 0) and gallery.resource_id == "" and gallery.content_desc == ""
    clock = next(n for n in root.walk() if n.text == "Clock")
    assert clock.long_clickable and not clock.password and clock.enabled  # defaults where absent
    back = next(n for n in elements(root) if n.content_desc == "Back")
    assert back.clickable and back.package == "com.android.systemui"


@pytest.mark.parametrize("text, fragment", [
    ("", "the dump is empty"),
    ("   \n", "the dump is empty"),
    ("ERROR: null root node returned by UiTestAutomationBridge.", "not well-formed XML"),
    ('<hierarchy rotation="0"><node index="0" bounds="[0,0][10,10]"><node index="1"', "not well-formed XML at line 1"),
    ('<window><node bounds="[0,0][1,1]"/></window>', "the root element is <window>"),
    ('<hierarchy rotation="0"></hierarchy>', "has no <node>"),
    ('<hierarchy><node bounds="[0,0][1080,2400]"><node bounds="0,0,10,10"/></node></hierarchy>',
     "hierarchy/node[0]/node[0] has bounds='0,0,10,10'"),
    ('<hierarchy><node bounds="[0,0][9,9]" clickable="yes"/></hierarchy>', "clickable='yes'; expected true or false"),
    ('<hierarchy><node bounds="[0,0][9,9]"><item/></node></hierarchy>', "unexpected <item> element inside hierarchy/node[0]"),
    (b"<hierarchy>\xff\xfe</hierarchy>", "not UTF-8 (byte 0xff"),
])
def test_malformed_dumps_name_what_is_wrong(text, fragment):
    with pytest.raises(DumpError) as e:
        parse_dump(text)
    assert "malformed uiautomator dump" in str(e.value) and fragment in str(e.value)


def test_simulated_screens_round_trip_through_the_dump_format():
    """What the simulator shows and what the adb parser reads of the same screen are identical."""
    phone = SimPhone(seed_world(np.random.default_rng(3)), make_apps())
    for action in (lambda: None, lambda: phone.open_app("Contacts"), lambda: phone.tap(980, 2080),
                   lambda: phone.tap(300, 400), lambda: phone.type_text("Zoë <&> \"q\"")):
        action()
        tree = phone.tree()
        parsed = parse_dump(to_xml(tree) + "\nUI hierchary dumped to: /dev/tty\n")
        assert describe(elements(parsed)) == describe(elements(tree))
