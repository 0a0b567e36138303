"""Which MiniWoB++ tasks exist (the HTML pages shipped in the `miniwob` wheel) and the default set.

Any of the wheel's ~125 task pages can be named with ``task=``; `DEFAULT_TASKS` is the set an env without
a ``task`` samples from: one task of each kind of interaction (buttons, links, dialogs, text entry,
focus, checkboxes, select lists, tabs, a login form), each solved by the scripted expert in
`agentgym.envs.browser.expert` (tests check every one).
"""

from __future__ import annotations

import difflib
from pathlib import Path

DEFAULT_TASKS: tuple[str, ...] = ("click-button", "click-link", "click-dialog", "enter-text", "focus-text",
                                  "click-checkboxes", "choose-list", "click-tab", "login-user")


def html_dir() -> Path:
    """The folder of task pages inside the installed `miniwob` package."""
    try:
        import miniwob
    except ImportError as e:
        raise ImportError("MiniWoB++ tasks need the miniwob package: pip install 'agentgym[browser]'") from e
    return Path(miniwob.__file__).parent / "html" / "miniwob"


def available_tasks() -> list[str]:
    return sorted(p.stem for p in html_dir().glob("*.html"))


def task_url(name: str, base_url: str | None = None) -> str:
    """The URL of a task page: ``file://`` into the wheel, or under `base_url` (e.g. an HTTP server)."""
    if base_url is not None:
        return f"{base_url.rstrip('/')}/{name}.html"
    return (html_dir() / f"{name}.html").as_uri()


def check_task(name: str) -> str:
    """`name` if the wheel has that task page, else a ValueError naming the closest ones."""
    known = available_tasks()
    if name not in known:
        close = difflib.get_close_matches(str(name), known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else f" Known tasks include {', '.join(DEFAULT_TASKS)}."
        raise ValueError(f"unknown MiniWoB task {name!r}.{hint}")
    return name
