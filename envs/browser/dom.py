"""The page as the agent reads it: a compact list of the task area's visible elements with stable refs.

A script run in the page walks the page body (except MiniWoB's own chrome: the instruction in ``#query``
is the utterance; the reward display), keeps every visible element that is interactive or carries its own text, and tags each with
a ``data-agentgym-ref`` attribute the first time it is seen, so an element keeps its ref for the whole
episode (refs restart at 1 on reset). Each element is reported like MiniWoB's ``dom_elements``: ref, tag,
text, value, bounds, plus the state an agent needs (checked, selected, focused, disabled, options of a
select). `describe` writes them one per line, e.g. ``[3] button "Submit" @(12,60 40x20)``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

REF_ATTR = "data-agentgym-ref"

# Walks the task area and returns the elements as plain objects (run with page.evaluate).
SNAPSHOT_JS = """
() => {
  const area = document.body;
  const SKIP_IDS = new Set(['query', 'reward-display', 'sync-task-cover', 'episode-id']);
  const CLICKABLE_ALWAYS = new Set(['A','BUTTON','INPUT','SELECT','TEXTAREA']);
  const SKIP = new Set(['SCRIPT','STYLE','NOSCRIPT','OPTION']);
  if (window.__agentgymNextRef === undefined) window.__agentgymNextRef = 1;
  const clean = (s) => (s || '').replace(/\\s+/g, ' ').trim();
  const ownText = (el) => {
    let t = '';
    for (const n of el.childNodes) if (n.nodeType === Node.TEXT_NODE) t += ' ' + n.textContent;
    return clean(t);
  };
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0) return false;
    const s = getComputedStyle(el);
    return s.visibility !== 'hidden' && s.display !== 'none' && parseFloat(s.opacity || '1') > 0;
  };
  const out = [];
  const walk = (el) => {
    if (SKIP.has(el.tagName) || SKIP_IDS.has(el.id)) return;
    if (!visible(el)) {
      // a hidden parent may still hold visible children (e.g. position: fixed); check them too
      for (const c of el.children) walk(c);
      return;
    }
    const tag = el.tagName.toLowerCase();
    const text = (tag === 'button' || tag === 'a' || tag === 'label') ? clean(el.textContent) : ownText(el);
    const interactive = CLICKABLE_ALWAYS.has(el.tagName) || el.hasAttribute('onclick') ||
                        el.getAttribute('role') === 'button' || (el.tabIndex >= 0 && el !== area);
    if (text || interactive) {
      if (!el.hasAttribute('%(ref)s')) {
        el.setAttribute('%(ref)s', String(window.__agentgymNextRef++));
      }
      const r = el.getBoundingClientRect();
      const item = {ref: parseInt(el.getAttribute('%(ref)s')), tag: tag, text: text.slice(0, 200),
                    bounds: [Math.round(r.left), Math.round(r.top), Math.round(r.width), Math.round(r.height)]};
      if (tag === 'input') item.type = (el.type || 'text').toLowerCase();
      if ('value' in el && (tag === 'input' || tag === 'textarea' || tag === 'select')) {
        if (!(item.type === 'checkbox' || item.type === 'radio' || item.type === 'submit' || item.type === 'button'))
          item.value = String(el.value).slice(0, 200);
      }
      if (tag === 'input' && (item.type === 'checkbox' || item.type === 'radio')) item.checked = !!el.checked;
      if (tag === 'select') item.options = Array.from(el.options).map(o => clean(o.textContent)).slice(0, 50);
      if (el.id) item.id = el.id;
      if (document.activeElement === el) item.focused = true;
      if (el.disabled) item.disabled = true;
      out.push(item);
    }
    if (tag !== 'button' && tag !== 'select') for (const c of el.children) walk(c);
  };
  for (const c of area.children) walk(c);
  return out;
}
""".replace("%(ref)s", REF_ATTR)

# Restarts the ref counter (called right after a new episode is generated).
RESET_REFS_JS = "() => { window.__agentgymNextRef = 1; }"


class Element(BaseModel):
    """One element of the task area, as MiniWoB's ``dom_elements`` reports it (a subset)."""

    model_config = ConfigDict(extra="forbid")

    ref: int
    tag: str
    text: str = ""
    bounds: tuple[int, int, int, int]  # left, top, width, height in CSS pixels of the viewport
    type: str | None = None  # input type
    value: str | None = None
    checked: bool | None = None
    options: list[str] | None = None
    id: str | None = None
    focused: bool = False
    disabled: bool = False

    @property
    def center(self) -> tuple[float, float]:
        left, top, width, height = self.bounds
        return left + width / 2, top + height / 2


def parse_elements(raw: list[dict[str, Any]]) -> list[Element]:
    return [Element.model_validate(item) for item in raw]


def describe(elements: list[Element]) -> str:
    """One line per element: ``[ref] tag "text" value=".." (state) @(left,top widthxheight)``."""
    lines = []
    for el in elements:
        kind = el.tag if el.type is None or el.tag != "input" else f"input:{el.type}"
        parts = [f"[{el.ref}] {kind}"]
        if el.text:
            parts.append(json.dumps(el.text, ensure_ascii=False))
        if el.id:
            parts.append(f"id={el.id}")
        if el.value is not None:
            parts.append(f"value={json.dumps(el.value, ensure_ascii=False)}")
        if el.options is not None:
            parts.append("options=" + json.dumps(el.options, ensure_ascii=False))
        flags = [name for name, on in (("checked", el.checked), ("focused", el.focused), ("disabled", el.disabled)) if on]
        if el.checked is False:
            flags.insert(0, "unchecked")
        if flags:
            parts.append(f"({', '.join(flags)})")
        left, top, width, height = el.bounds
        parts.append(f"@({left},{top} {width}x{height})")
        lines.append(" ".join(parts))
    return "\n".join(lines) if lines else "(no visible elements)"
