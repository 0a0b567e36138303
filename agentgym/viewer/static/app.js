// agentgym viewer: shared helpers, the router, and the trajectory list page.
// Model-written text is only ever inserted with textContent (see el()), never parsed as HTML.
"use strict";

const AG = { pages: {}, run: null };

// el("div", {class: "x", onclick: fn}, "text", child, ...): build a DOM element.
AG.el = function (tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
};

AG.api = async function (path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
};

AG.fmt = function (x, digits = 3) {
  if (x === null || x === undefined) return "–";
  if (typeof x !== "number") return String(x);
  return Number.isInteger(x) ? x.toLocaleString("en") : x.toFixed(digits);
};

AG.rewardClass = (r) => (r === null || r === undefined ? "" : r > 0 ? "good" : "bad");

AG.showMessages = function (messages) {
  const banner = document.getElementById("banner");
  banner.replaceChildren();
  banner.hidden = !messages.length;
  if (messages.length) {
    banner.append(AG.el("strong", {}, "Some input could not be read; showing what is readable:"),
      AG.el("ul", {}, messages.map((m) => AG.el("li", { class: "msg" }, m))));
  }
};

// ---- router: #/ (list, filters in the query), #/tree/N, #/dashboard ----------------------------
AG.route = async function () {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const main = document.getElementById("main");
  main.dataset.ready = "";
  for (const id of ["nav-list", "nav-dashboard"]) document.getElementById(id).classList.remove("active");
  try {
    const tree = path.match(/^\/tree\/(\d+)$/);
    if (tree) return await AG.pages.tree(main, Number(tree[1]), params);
    if (path === "/dashboard") {
      document.getElementById("nav-dashboard").classList.add("active");
      return await AG.pages.dashboard(main);
    }
    document.getElementById("nav-list").classList.add("active");
    return await AG.pages.list(main, params);
  } catch (err) {
    main.replaceChildren(AG.el("p", { class: "error" }, "Error: " + err.message));
  }
};

// ---- list page --------------------------------------------------------------------------------
const PAGE_SIZE = 100;
const FILTERS = ["env", "source", "rmin", "rmax", "lmin", "lmax", "errors", "branched", "smin", "smax", "q", "sort"];

function filterForm(params) {
  const run = AG.run;
  const input = (name, label, type, extra) => AG.el("label", {}, label,
    AG.el("input", { id: "f-" + name, name, type, value: params.get(name) || "", ...extra }));
  const select = (name, label, options) => {
    const node = AG.el("select", { id: "f-" + name, name },
      options.map(([value, text]) => AG.el("option", { value }, text)));
    node.value = params.get(name) || "";
    return AG.el("label", {}, label, node);
  };
  const form = AG.el("form", { id: "filters" },
    input("q", "search text", "search", { placeholder: "question, action, observation…" }),
    select("env", "env", [["", "all envs"], ...run.envs.map((e) => [e, e])]),
    run.sources.length > 1 ? select("source", "file", [["", "all files"], ...run.sources.map((s) => [s.name, s.name])]) : null,
    input("rmin", "reward ≥", "number", { step: "any" }), input("rmax", "reward ≤", "number", { step: "any" }),
    input("lmin", "turns ≥", "number", { min: 0 }), input("lmax", "turns ≤", "number", { min: 0 }),
    select("errors", "tool errors", [["", "any"], ["yes", "with errors"], ["no", "without"]]),
    select("branched", "branches", [["", "any"], ["yes", "branched"], ["no", "unbranched"]]),
    input("smin", "step ≥", "number", { min: 0 }), input("smax", "step ≤", "number", { min: 0 }),
    select("sort", "sort", [["", "file order"], ["mean_reward:desc", "reward ↓"], ["mean_reward:asc", "reward ↑"],
      ["max_turns:desc", "turns ↓"], ["branches:desc", "branches ↓"], ["errors:desc", "errors ↓"],
      ["tokens:desc", "tokens ↓"], ["step:desc", "step ↓"]]),
    AG.el("button", { type: "reset", id: "f-clear" }, "clear"));
  let timer = null;
  const apply = () => {
    const next = new URLSearchParams();
    for (const name of FILTERS) {
      const field = form.elements.namedItem(name);
      if (field && field.value !== "") next.set(name, field.value);
    }
    location.hash = "#/?" + next.toString();
  };
  form.addEventListener("input", (event) => {
    clearTimeout(timer);
    timer = setTimeout(apply, event.target.type === "search" ? 250 : 120);  // debounce typing
  });
  form.addEventListener("submit", (event) => { event.preventDefault(); apply(); });
  form.addEventListener("reset", () => setTimeout(() => { location.hash = "#/"; }, 0));
  return form;
}

function treeRow(s) {
  const reward = Math.max(0, Math.min(1, s.mean_reward));
  return AG.el("tr", { class: "tree-row", dataset: { n: s.n }, onclick: () => { location.hash = "#/tree/" + s.n; } },
    AG.el("td", { class: "num" }, s.n),
    AG.el("td", { class: "mono" }, s.id.slice(0, 16)),
    AG.el("td", {}, s.env_id.replace(/^agentgym\//, "")),
    AG.el("td", { class: "num" }, s.step ?? "–"),
    AG.el("td", { class: "question", title: s.question }, s.question),
    AG.el("td", { class: "num" }, s.trajectories),
    AG.el("td", { class: "num" }, s.max_turns),
    AG.el("td", { class: "num" }, s.tokens),
    AG.el("td", { class: "num" }, s.branches || ""),
    AG.el("td", { class: "num" }, s.tool_calls),
    AG.el("td", { class: "num " + (s.errors ? "error" : "") }, s.errors || ""),
    AG.el("td", { class: "num" }, s.mean_reward.toFixed(2),
      AG.el("span", { class: "bar", dataset: { w: reward } })),
    AG.el("td", {}, s.has_memory ? AG.el("span", { class: "chip" }, "memory") : null,
      s.has_images ? AG.el("span", { class: "chip" }, "images") : null,
      s.source !== "trajectories.jsonl" ? AG.el("span", { class: "chip" }, s.source) : null));
}

AG.pages.list = async function (main, params) {
  const offset = Number(params.get("offset") || 0);
  const query = new URLSearchParams(params);
  query.set("limit", PAGE_SIZE);
  const page = await AG.api("/api/trees?" + query.toString());
  const head = ["#", "id", "env", "step", "question", "trajs", "turns", "tokens", "branches", "tools", "errors",
    "reward", ""];
  const body = AG.el("tbody", {}, page.items.map(treeRow));
  for (const bar of body.querySelectorAll(".bar")) bar.style.width = (Number(bar.dataset.w) * 50) + "px";
  const go = (to) => {
    const next = new URLSearchParams(params);
    next.set("offset", to);
    location.hash = "#/?" + next.toString();
  };
  const last = Math.max(0, Math.ceil(page.total / PAGE_SIZE) - 1) * PAGE_SIZE;
  const pager = AG.el("div", { class: "pager" },
    AG.el("button", { id: "prev-page", disabled: offset <= 0, onclick: () => go(Math.max(0, offset - PAGE_SIZE)) }, "‹ prev"),
    AG.el("span", { id: "page-info" },
      page.total ? `${offset + 1}–${Math.min(offset + PAGE_SIZE, page.total)} of ${page.total.toLocaleString("en")}` : "0"),
    AG.el("button", { id: "next-page", disabled: offset + PAGE_SIZE >= page.total, onclick: () => go(offset + PAGE_SIZE) }, "next ›"),
    AG.el("button", { disabled: offset >= last, onclick: () => go(last) }, "last »"));
  const count = AG.el("span", { id: "list-count", dataset: { total: page.total } },
    `${page.total.toLocaleString("en")} of ${page.run_trees.toLocaleString("en")} trees match`);
  const table = page.items.length
    ? AG.el("table", { class: "trees", id: "tree-list" }, AG.el("thead", {}, AG.el("tr", {}, head.map((h) => AG.el("th", {}, h)))), body)
    : AG.el("p", { class: "muted", id: "tree-list-empty" }, AG.run.trees ? "No tree matches these filters." : "This run has no readable trees.");
  const focused = document.activeElement && document.activeElement.id;
  main.replaceChildren(filterForm(params), AG.el("div", { class: "list-head" }, count, pager), table);
  if (focused && focused.startsWith("f-")) {  // keep typing in the search box across re-renders
    const field = document.getElementById(focused);
    if (field) { field.focus(); if (field.type === "search") field.setSelectionRange(field.value.length, field.value.length); }
  }
  main.dataset.ready = "list";
};

AG.start = async function () {
  try {
    AG.run = await AG.api("/api/run");
  } catch (err) {
    document.getElementById("main").replaceChildren(AG.el("p", { class: "error" }, "Cannot load the run: " + err.message));
    return;
  }
  document.getElementById("run-path").textContent = `${AG.run.path} · ${AG.run.trees.toLocaleString("en")} trees`;
  AG.showMessages(AG.run.messages);
  window.addEventListener("hashchange", AG.route);
  await AG.route();
};

document.addEventListener("DOMContentLoaded", AG.start);
