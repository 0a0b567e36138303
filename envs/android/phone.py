"""`SimPhone`: a simulated Android phone with the input primitives of a real one (tap, long press, type,
keys, swipe, open app) over apps with real state.

The screen is rebuilt from the state after every input, as a view tree (see `ui`); a tap hit-tests that
tree like a touchscreen and runs the callback of the node it lands on. Navigation is a back stack of
`Screen`s; a focused text field shows the keyboard (which takes the bottom of the screen, so content
above it shrinks, as with ``adjustResize``); back first hides the keyboard, then closes a dialog, then
pops the stack.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentgym.envs.android import widgets as w
from agentgym.envs.android.actions import ActionError
from agentgym.envs.android.state import PhoneState
from agentgym.envs.android.ui import Node, hit_test, is_scrollable, is_tappable


@dataclass
class Screen:
    app: str
    kind: str
    arg: Any = None  # which record the screen shows (e.g. a contact's name)
    fields: dict[str, str] = field(default_factory=dict)
    focus: str | None = None  # key of the focused text field
    scroll: int = 0
    dialog: dict[str, Any] | None = None


@dataclass
class App:
    name: str
    package: str
    root: str  # kind of the app's first screen
    build: Callable[[SimPhone, Screen], Node]  # the app window for a screen
    build_dialog: Callable[[SimPhone, Screen], Node] | None = None
    # Runs on back before the screen is popped (a notes editor saves); returning True consumes the key
    # (a file selection is cleared instead of leaving).
    on_back: Callable[[SimPhone, Screen], bool] | None = None


class SimPhone:
    width, height = w.WIDTH, w.HEIGHT

    def __init__(self, state: PhoneState, apps: dict[str, App]):
        self.state = state
        self.apps = apps
        self.stack: list[Screen] = [Screen("Home", "home")]
        self._tree: tuple[Node, Node | None] | None = None
        self._png: tuple[float, bytes] | None = None  # the last screenshot, until the screen changes

    # ---- navigation used by the apps ---------------------------------------------------------------
    @property
    def screen(self) -> Screen:
        return self.stack[-1]

    @property
    def keyboard_shown(self) -> bool:
        return self.screen.focus is not None

    def push(self, screen: Screen) -> None:
        self.stack.append(screen)

    def pop(self) -> None:
        if len(self.stack) > 1:
            self.stack.pop()
        if len(self.stack) == 1 and self.stack[0].app != "Home":
            self.stack = [Screen("Home", "home")]

    def replace(self, screen: Screen) -> None:
        self.stack[-1] = screen

    def focus(self, key: str | None) -> None:
        self.screen.focus = key

    def content_bottom(self) -> int:
        """Bottom of the app's content area: above the keyboard when it is shown, else above the nav bar."""
        return self.height - w.NAVBAR_H - (w.KEYBOARD_H if self.keyboard_shown else 0)

    # ---- the screen ----------------------------------------------------------------------------------
    def _build(self) -> tuple[Node, Node | None]:
        screen = self.screen
        app = self.apps[screen.app]
        window = app.build(self, screen)
        dialog = app.build_dialog(self, screen) if screen.dialog and app.build_dialog else None
        return window, dialog

    def layers(self) -> tuple[Node, Node | None]:
        """(app window, dialog or None), rebuilt after any input."""
        if self._tree is None:
            self._tree = self._build()
        return self._tree

    def tree(self) -> Node:
        """What uiautomator would dump: the status bar and the focused window (a dialog hides the app
        behind it from the accessibility tree, as a dialog window does on a device)."""
        window, dialog = self.layers()
        front = dialog if dialog is not None else window
        return Node(cls="android.widget.FrameLayout", bounds=(0, 0, self.width, self.height),
                    package=front.package, children=[w.status_bar(self), front])

    def _changed(self) -> None:
        self._tree = None
        self._png = None

    # ---- input primitives (the `Device` protocol) -----------------------------------------------------
    def tap(self, x: int, y: int) -> None:
        window, dialog = self.layers()
        if dialog is not None and not dialog.contains(x, y):
            self.screen.dialog = None  # a tap outside a dialog dismisses it
        else:
            had_dialog = self.screen.dialog is not None
            node = hit_test(self.tree(), x, y, is_tappable)
            if node is not None and node.on_click is not None:
                node.on_click()
            if not had_dialog and self.screen.dialog is not None:
                self.screen.focus = None  # a dialog window takes the focus: the keyboard goes away
        self._changed()

    def long_press(self, x: int, y: int) -> None:
        node = hit_test(self.tree(), x, y, lambda n: n.enabled and n.long_clickable)
        if node is not None and node.on_long_click is not None:
            node.on_long_click()
        self._changed()

    def type_text(self, text: str) -> None:
        screen = self.screen
        if screen.focus is None:
            raise ActionError("No text field is focused, so the text went nowhere. Click a text field first, "
                              'or give input_text the field\'s "index".')
        screen.fields[screen.focus] = screen.fields.get(screen.focus, "") + text
        self._changed()

    def key(self, name: str) -> None:
        screen = self.screen
        if name == "home":
            self.stack = [Screen("Home", "home")]
        elif name == "enter":
            screen.focus = None  # the IME's "done": single-line fields close the keyboard
        elif name == "back":
            if screen.focus is not None:
                screen.focus = None
            elif screen.dialog is not None:
                screen.dialog = None
            else:
                on_back = self.apps[screen.app].on_back
                if on_back is None or not on_back(self, screen):
                    self.pop()
        self._changed()

    def swipe(self, x1: int, y1: int, x2: int, y2: int) -> None:
        if abs(y2 - y1) > abs(x2 - x1):
            node = hit_test(self.tree(), x1, y1, is_scrollable)
            if node is not None and node.on_scroll is not None:
                node.on_scroll(y1 - y2)  # the finger moving up scrolls the content down
        self._changed()

    def open_app(self, name: str) -> None:
        app = next((a for a in self.apps.values() if a.name.casefold() == name.strip().casefold() and a.name != "Home"), None)
        if app is None:
            names = ", ".join(a for a in self.apps if a != "Home")
            raise ActionError(f"There is no app called {name!r}. Installed apps: {names}.")
        self.stack = [Screen("Home", "home"), Screen(app.name, app.root)]
        self._changed()

    def wait(self) -> None:
        """Nothing on the simulated phone changes by itself: the screen (and its screenshot) stays."""

    def screenshot_png(self, scale: float = 0.5) -> bytes:
        """The screen as PNG at `scale` of 1080x2400; reused while the screen has not changed (an action
        that failed, a wait)."""
        if self._png is None or self._png[0] != scale:
            from agentgym.envs.android.render import render_png

            self._png = (scale, render_png(self, scale))
        return self._png[1]

    # ---- copying (fork): node callbacks close over this phone, so a copy rebuilds its own tree -------
    def __deepcopy__(self, memo: dict) -> SimPhone:
        new = SimPhone.__new__(SimPhone)
        memo[id(self)] = new
        new.state = copy.deepcopy(self.state, memo)
        new.stack = copy.deepcopy(self.stack, memo)
        new.apps = self.apps  # functions only: shared
        new._tree = None
        new._png = None
        return new


def home_app(apps: dict[str, App]) -> App:
    """The launcher: a grid of app icons."""

    def build(phone: SimPhone, screen: Screen) -> Node:
        pkg = "com.google.android.apps.nexuslauncher"
        names = [a for a in apps if a != "Home"]
        kids = []
        cols, cell_w, cell_h = 4, w.WIDTH // 4, 300
        for i, name in enumerate(names):
            col, row = i % cols, i // cols
            left, top = col * cell_w, 600 + row * cell_h

            def launch(name: str = name) -> None:
                phone.open_app(name)

            kids.append(Node(cls="android.widget.TextView", text=name, content_desc=name, package=pkg,
                             resource_id=f"{pkg}:id/icon", bounds=(left + 20, top, left + cell_w - 20, top + cell_h - 40),
                             clickable=True, long_clickable=True, focusable=True, on_click=launch))
        kids.insert(0, Node(cls="android.widget.TextView", text="Mon, Mar 2", package=pkg,
                            resource_id=f"{pkg}:id/date", bounds=(60, 240, 700, 340)))
        return Node(cls="android.widget.FrameLayout", package=pkg, resource_id=f"{pkg}:id/workspace",
                    bounds=(0, w.STATUS_H, w.WIDTH, w.HEIGHT - w.NAVBAR_H), children=kids)

    return App("Home", "com.google.android.apps.nexuslauncher", "home", build)
