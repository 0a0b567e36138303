"""The simulated phone's apps, by the name `open_app` takes."""

from __future__ import annotations

from agentgym.envs.android.apps import calendar, clock, contacts, files, messages, notes, settings
from agentgym.envs.android.phone import App, home_app


def make_apps() -> dict[str, App]:
    apps = {m.APP.name: m.APP for m in (contacts, messages, calendar, clock, settings, files, notes)}
    return {"Home": home_app(apps), **apps}
