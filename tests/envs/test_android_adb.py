"""The adb backend against a fake `adb` on PATH that records its command lines and answers like a device
(uiautomator dumps from the fixtures, `wm size`, a PNG screencap): the env must build the right adb
commands for every action and read the screen with the shared parser."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from agentgym.envs.android import AndroidEnv
from agentgym.envs.android.actions import ActionError
from agentgym.envs.android.adb import AdbDevice, AdbError, escape_input_text

FIXTURES = Path(__file__).parent / "fixtures" / "android"

FAKE_ADB = textwrap.dedent('''\
    #!{python}
    import json, os, sys
    args = sys.argv[1:]
    with open(os.environ["FAKE_ADB_LOG"], "a") as log:
        log.write(json.dumps(args) + "\\n")
    if os.environ.get("FAKE_ADB_NO_DEVICE"):
        sys.stderr.write("adb: no devices/emulators found\\n"); sys.exit(1)
    if args[:1] == ["-s"]:
        args = args[2:]
    dump = open(os.environ["FAKE_ADB_DUMP"], "rb").read()
    out = sys.stdout.buffer
    if args == ["shell", "wm", "size"]:
        out.write(b"Physical size: 1080x2400\\n")
    elif args == ["exec-out", "uiautomator", "dump", "/dev/tty"]:
        if os.environ.get("FAKE_ADB_TTY_FAIL"):
            out.write(b"ERROR: could not get idle state.\\n")
        else:
            out.write(dump + b"UI hierchary dumped to: /dev/tty\\n")
    elif args[:3] == ["shell", "uiautomator", "dump"]:
        out.write(b"UI hierchary dumped to: " + args[3].encode() + b"\\n")
    elif args[:2] == ["exec-out", "cat"]:
        out.write(dump)
    elif args == ["exec-out", "screencap", "-p"]:
        out.write(open(os.environ["FAKE_ADB_PNG"], "rb").read())
    elif args[:2] == ["shell", "input"]:
        pass
    elif args[:2] == ["shell", "monkey"]:
        out.write(b"Events injected: 1\\n")
    else:
        sys.stderr.write("unknown command: " + " ".join(args) + "\\n"); sys.exit(1)
''')


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    adb = bindir / "adb"
    adb.write_text(FAKE_ADB.format(python=sys.executable))
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    png = tmp_path / "screen.png"
    Image.new("RGB", (1080, 2400), (10, 20, 30)).save(png)
    log = tmp_path / "adb.log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_LOG", str(log))
    monkeypatch.setenv("FAKE_ADB_PNG", str(png))
    monkeypatch.setenv("FAKE_ADB_DUMP", str(FIXTURES / "pixel_settings_nested_scroll.xml"))

    def commands() -> list[list[str]]:
        lines = log.read_text().splitlines() if log.exists() else []
        log.write_text("")
        return [json.loads(line) for line in lines]

    return commands


def make_env(**kw) -> AndroidEnv:
    adb = {"settle_s": 0.0, "wait_s": 0.0, **kw.pop("adb", {})}
    return AndroidEnv(backend="adb", goal="Turn on Bluetooth.", adb=adb, **kw)


def test_actions_become_adb_commands(fake_adb):
    env = make_env(adb={"serial": "emulator-5554"})
    obs, info = env.reset(seed=0)
    assert obs.startswith("Goal: Turn on Bluetooth.\n\nScreen elements:\n")
    assert '"Connected devices"' in obs and info["task"]["goal"] == "Turn on Bluetooth."
    cmds = fake_adb()
    assert cmds[0] == ["-s", "emulator-5554", "shell", "wm", "size"]
    assert ["-s", "emulator-5554", "shell", "input", "keyevent", "KEYCODE_HOME"] in cmds
    assert cmds[-1] == ["-s", "emulator-5554", "exec-out", "uiautomator", "dump", "/dev/tty"]

    listing = obs.split("Screen elements:\n", 1)[1].splitlines()
    row = next(i for i, line in enumerate(listing) if '"Connected devices"' in line)
    expected = [
        ({"action_type": "click", "index": row}, ["shell", "input", "tap", "368", "668"]),  # centre of the title
        ({"action_type": "click", "x": 12, "y": 34}, ["shell", "input", "tap", "12", "34"]),
        ({"action_type": "long_press", "index": row}, ["shell", "input", "swipe", "368", "668", "368", "668", "1000"]),
        ({"action_type": "input_text", "text": "it's 5 & $x"},
         ["shell", "input", "text", "it\\'s%s5%s\\&%s\\$x"]),
        ({"action_type": "keyboard_enter"}, ["shell", "input", "keyevent", "KEYCODE_ENTER"]),
        ({"action_type": "navigate_back"}, ["shell", "input", "keyevent", "KEYCODE_BACK"]),
        ({"action_type": "navigate_home"}, ["shell", "input", "keyevent", "KEYCODE_HOME"]),
        # scroll down inside the biggest scrollable (the ScrollView [0,132][1080,2337]): the finger moves up
        ({"action_type": "scroll", "direction": "down"}, ["shell", "input", "swipe", "540", "1895", "540", "573", "300"]),
        ({"action_type": "swipe", "direction": "left"}, ["shell", "input", "swipe", "864", "1234", "216", "1234", "300"]),
        ({"action_type": "open_app", "app_name": "settings"},
         ["shell", "monkey", "-p", "com.android.settings", "-c", "android.intent.category.LAUNCHER", "1"]),
        ({"action_type": "open_app", "app_name": "org.example.app"},
         ["shell", "monkey", "-p", "org.example.app", "-c", "android.intent.category.LAUNCHER", "1"]),
    ]
    for action, command in expected:
        obs, reward, terminated, truncated, info = env.step(json.dumps(action))
        cmds = fake_adb()
        assert ["-s", "emulator-5554", *command] == cmds[0], action
        assert cmds[-1][-4:] == ["exec-out", "uiautomator", "dump", "/dev/tty"]  # the next observation
        assert not info["errors"] and "Screen elements:" in obs
    obs, reward, terminated, _, info = env.step('{"action_type": "status", "goal_status": "complete"}')
    assert terminated and reward == 0.0 and info["success"] is None  # a real device's success is not checked here
    env.close()


def test_screenshots_come_from_screencap(fake_adb):
    env = make_env(screenshots=True)
    _, info = env.reset(seed=0)
    image = Image.open(io.BytesIO(base64.b64decode(info["observation"]["images"][0])))
    assert image.size == (1080, 2400)
    assert ["exec-out", "screencap", "-p"] in fake_adb()


def test_dump_falls_back_to_a_file_when_the_tty_is_refused(fake_adb, monkeypatch):
    monkeypatch.setenv("FAKE_ADB_TTY_FAIL", "1")
    device = AdbDevice(settle_s=0)
    assert any(n.text == "Connected devices" for n in device.tree().walk())
    cmds = fake_adb()
    assert cmds[-2:] == [["shell", "uiautomator", "dump", "/sdcard/window_dump.xml"],
                         ["exec-out", "cat", "/sdcard/window_dump.xml"]]


def test_agent_errors_are_observations_and_device_errors_are_clear(fake_adb, monkeypatch, tmp_path):
    env = make_env()
    env.reset(seed=0)
    obs, _, _, _, info = env.step('{"action_type": "click", "index": 999}')
    assert "There is no element 999" in obs and info["tool_calls"][0]["error_type"] == "bad_arguments"
    obs, _, _, _, info = env.step('{"action_type": "input_text", "text": "Zoë"}')
    assert "ASCII" in obs and info["errors"] == 1
    obs, _, _, _, info = env.step('{"action_type": "open_app", "app_name": "Nope"}')
    assert "Unknown app 'Nope'" in obs
    bad = tmp_path / "bad.xml"
    bad.write_text('<hierarchy rotation="0"><node bounds="[0,0][10]"/></hierarchy>')
    monkeypatch.setenv("FAKE_ADB_DUMP", str(bad))
    obs, _, terminated, _, info = env.step('{"action_type": "wait"}')
    assert not terminated and info["tool_calls"][0]["error_type"] == "infra_error"
    assert "malformed uiautomator dump: hierarchy/node[0] has bounds='[0,0][10]'" in obs
    monkeypatch.setenv("FAKE_ADB_NO_DEVICE", "1")
    with pytest.raises(AdbError, match="no devices/emulators found"):
        AdbDevice(settle_s=0)
    with pytest.raises(AdbError, match="adb not found"):
        AdbDevice(adb_path=str(tmp_path / "no-adb"))


def test_input_text_escaping():
    assert escape_input_text("a b") == "a%sb"
    assert escape_input_text('say "hi" (now); ok?') == 'say%s\\"hi\\"%s\\(now\\)\\;%sok\\?'
    with pytest.raises(ActionError, match="ASCII"):
        escape_input_text("naïve")
