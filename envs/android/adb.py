"""A real Android device (or emulator) over adb, offering the same `Device` primitives as the simulated
phone, so the env's actions, element lists and parser are shared.

Screen: ``adb exec-out uiautomator dump /dev/tty`` (falling back to dumping to a file on the device and
reading it back, for builds whose uiautomator cannot write to a tty), parsed by `uiautomator.parse_dump`;
pixels: ``adb exec-out screencap -p``. Input: ``adb shell input tap|swipe|text|keyevent`` and, for
open_app, ``adb shell monkey -p PACKAGE -c android.intent.category.LAUNCHER 1``.
A failing adb command raises `AdbError` with the command line and adb's message.
"""

from __future__ import annotations

import re
import subprocess
import time

from agentgym.envs.android.actions import ActionError
from agentgym.envs.android.ui import Node
from agentgym.envs.android.uiautomator import parse_dump

DEFAULT_APPS = {"Contacts": "com.google.android.contacts", "Messages": "com.google.android.apps.messaging",
                "Calendar": "com.google.android.calendar", "Clock": "com.google.android.deskclock",
                "Settings": "com.android.settings", "Files": "com.google.android.documentsui",
                "Chrome": "com.android.chrome", "Camera": "com.android.camera2", "Phone": "com.google.android.dialer"}
KEYCODES = {"back": "KEYCODE_BACK", "home": "KEYCODE_HOME", "enter": "KEYCODE_ENTER"}
DEVICE_DUMP_PATH = "/sdcard/window_dump.xml"
_SIZE = re.compile(r"(Physical|Override) size: (\d+)x(\d+)")
_SHELL_SPECIAL = set("()<>|;&*\\~\"'`$!?#[]{}")


class AdbError(RuntimeError):
    """adb failed: not installed, no device, a command error or a timeout."""


def escape_input_text(text: str) -> str:
    """`text` as an argument of ``input text``: spaces become %s and shell metacharacters are escaped (the
    argument goes through the device's shell). ``input text`` types ASCII only."""
    if not text.isascii():
        raise ActionError("A real device's `input text` types ASCII characters only; this text has others.")
    if "\n" in text or "\t" in text:
        raise ActionError("Type one line at a time; use keyboard_enter for a new line.")
    return "".join("%s" if ch == " " else ("\\" + ch if ch in _SHELL_SPECIAL else ch) for ch in text)


class AdbDevice:
    def __init__(self, serial: str | None = None, adb_path: str = "adb", timeout_s: float = 20.0,
                 settle_s: float = 0.5, wait_s: float = 1.0, apps: dict[str, str] | None = None,
                 long_press_ms: int = 1000):
        self.serial, self.adb_path, self.timeout_s, self.settle_s, self.wait_s = serial, adb_path, timeout_s, settle_s, wait_s
        self.apps = {**DEFAULT_APPS, **(apps or {})}
        self.long_press_ms = long_press_ms
        self._tree: Node | None = None
        self.width, self.height = self._screen_size()

    # ---- running adb -----------------------------------------------------------------------------
    def command(self, *args: str) -> list[str]:
        return [self.adb_path, *(["-s", self.serial] if self.serial else []), *args]

    def run(self, *args: str) -> bytes:
        cmd = self.command(*args)
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=self.timeout_s, check=False)
        except FileNotFoundError:
            raise AdbError(f"adb not found ({self.adb_path!r}); install it (apt-get install adb) or pass adb_path") from None
        except subprocess.TimeoutExpired:
            raise AdbError(f"`{' '.join(cmd)}` timed out after {self.timeout_s:g} s") from None
        if done.returncode != 0:
            message = (done.stderr or done.stdout).decode("utf-8", "replace").strip()
            raise AdbError(f"`{' '.join(cmd)}` failed (exit {done.returncode}): {message or 'no message'}")
        return done.stdout

    def _screen_size(self) -> tuple[int, int]:
        out = self.run("shell", "wm", "size").decode("utf-8", "replace")
        sizes = {kind: (int(wd), int(ht)) for kind, wd, ht in _SIZE.findall(out)}
        if not sizes:
            raise AdbError(f"cannot read the screen size from `wm size`: {out.strip()!r}")
        return sizes.get("Override", sizes.get("Physical"))  # type: ignore[return-value]

    # ---- the screen --------------------------------------------------------------------------------
    def dump(self) -> str:
        out = self.run("exec-out", "uiautomator", "dump", "/dev/tty").decode("utf-8", "replace")
        if "<hierarchy" not in out:  # some builds refuse /dev/tty: dump to a file and read it back
            self.run("shell", "uiautomator", "dump", DEVICE_DUMP_PATH)
            out = self.run("exec-out", "cat", DEVICE_DUMP_PATH).decode("utf-8", "replace")
        return out

    def tree(self) -> Node:
        """The current hierarchy; cached until the next input, so an action's element indices refer to
        exactly the list the agent was shown."""
        if self._tree is None:
            self._tree = parse_dump(self.dump())
        return self._tree

    def screenshot_png(self) -> bytes:
        png = self.run("exec-out", "screencap", "-p")
        if not png.startswith(b"\x89PNG"):
            raise AdbError(f"`screencap -p` did not return a PNG (got {png[:16]!r})")
        return png

    # ---- input -------------------------------------------------------------------------------------
    def _input(self, *args: str) -> None:
        self.run("shell", "input", *args)
        self._changed()

    def _changed(self) -> None:
        self._tree = None
        if self.settle_s:
            time.sleep(self.settle_s)  # let animations finish before the next dump

    def tap(self, x: int, y: int) -> None:
        self._input("tap", str(x), str(y))

    def long_press(self, x: int, y: int) -> None:
        self._input("swipe", str(x), str(y), str(x), str(y), str(self.long_press_ms))

    def type_text(self, text: str) -> None:
        if text:
            self._input("text", escape_input_text(text))

    def key(self, name: str) -> None:
        self._input("keyevent", KEYCODES[name])

    def swipe(self, x1: int, y1: int, x2: int, y2: int) -> None:
        self._input("swipe", str(x1), str(y1), str(x2), str(y2), "300")

    def open_app(self, name: str) -> None:
        package = next((p for n, p in self.apps.items() if n.casefold() == name.strip().casefold()), None)
        if package is None and re.fullmatch(r"[A-Za-z][\w]*(\.[A-Za-z][\w]*)+", name.strip()):
            package = name.strip()  # a package name given directly
        if package is None:
            raise ActionError(f"Unknown app {name!r}. Known apps: {', '.join(self.apps)} (or give a package name).")
        self.run("shell", "monkey", "-p", package, "-c", "android.intent.category.LAUNCHER", "1")
        self._changed()

    def wait(self) -> None:
        self._tree = None
        time.sleep(self.wait_s)
