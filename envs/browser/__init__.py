"""MiniWoB++ web tasks in headless Chromium (Playwright): one browser per process, a context per env,
the page as a numbered element list (optionally a screenshot), click/type/key/scroll/select actions."""

from agentgym.envs.browser.env import MiniWoBEnv
from agentgym.envs.browser.session import (BrowserCrashed, BrowserError, BrowserTimeout, BrowserUnavailable,
                                           missing_requirements)
from agentgym.envs.browser.tasks import DEFAULT_TASKS

__all__ = ["DEFAULT_TASKS", "BrowserCrashed", "BrowserError", "BrowserTimeout", "BrowserUnavailable", "MiniWoBEnv",
           "missing_requirements"]
