// agentgym viewer: the trajectory page. Left: the tree of episodes and branches (each branch marked with
// the entropy that triggered it). Right: the path from the root to the selected node, turn by turn, with
// a per-token entropy heatmap, tool calls, observations (text, memory, images) and sibling diffs.
"use strict";
(function () {
  const el = AG.el, fmt = AG.fmt;
  let state = null;  // { tree, selected, mode: "text" | "ids", cap }

  function percentile(values, q) {
    if (!values.length) return 0;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  }

  // White (certain) to red (uncertain); saturates at the tree's 95th-percentile entropy so one outlier
  // does not wash out every other token.
  const heat = (h, cap) => (h === null || h === undefined ? "transparent"
    : `rgba(230, 80, 40, ${(0.85 * Math.min(1, h / cap)).toFixed(3)})`);

  function pathTo(id) {
    const path = [];
    for (let cur = id; cur !== null && cur !== undefined; cur = state.tree.nodes[cur].parent) path.unshift(cur);
    return path;
  }

  function siblingsOf(node) {
    const ids = node.parent === null ? state.tree.roots : state.tree.nodes[node.parent].children;
    return ids.filter((id) => id !== node.id);
  }

  // ---- the branch tree ----------------------------------------------------------------------------
  function nodeButton(n, sources) {
    const errors = n.tool_calls.filter((c) => c.error_type).length;
    return el("button", { class: "node", dataset: { id: n.id }, title: n.action_text.slice(0, 400),
      onclick: () => select(n.id) },
      el("span", { class: "mono" }, "#" + n.id),
      n.branch_entropy !== null ? el("span", { class: "branch-marker", dataset: { entropy: n.branch_entropy },
        title: `branch: re-sampled this turn from the context of sibling #${n.branched_from}; ` +
          `entropy signal ${fmt(n.branch_entropy, 4)}` }, `⋔ H=${fmt(n.branch_entropy, 2)}`) : null,
      sources.has(n.id) ? el("span", { class: "branch-source", title: "a branch was spawned from this turn" }, "⋔src") : null,
      n.tool_calls.length ? el("span", { class: "chip" + (errors ? " bad" : "") },
        n.tool_calls.map((c) => c.name).join(", ") + (errors ? ` ✗${errors}` : "")) : null,
      n.mean_entropy !== null ? el("span", { class: "muted" }, "H̄ " + fmt(n.mean_entropy, 2)) : null,
      n.leaf_reward !== null ? el("span", { class: "leaf-reward " + AG.rewardClass(n.leaf_reward) },
        "R=" + fmt(n.leaf_reward, 2)) : null);
  }

  function branchTree(tree) {
    const sources = new Set(tree.nodes.filter((n) => n.branched_from !== null).map((n) => n.branched_from));
    // A path's turns are rows of one list; a list nests only where the path branches, so a 60-turn
    // episode stays one column wide instead of indenting each turn deeper.
    const chain = (id) => {
      const rows = [];
      let n = tree.nodes[id];
      for (;;) {
        rows.push(el("div", { class: "chain-row" }, nodeButton(n, sources)));
        if (n.children.length !== 1) break;
        n = tree.nodes[n.children[0]];
      }
      return el("li", {}, rows, n.children.length ? build(n.children) : null);
    };
    const build = (ids) => el("ul", { class: "branches" }, ids.map(chain));
    return el("div", { id: "tree-panel", class: "panel" },
      el("div", { class: "section-label" }, `${tree.roots.length} episodes · ${tree.leaves.length} trajectories · ` +
        `${tree.branch_points.length} branches`), build(tree.roots));
  }

  // ---- one turn -----------------------------------------------------------------------------------
  function heatmap(n) {
    const ids = state.mode === "ids";
    const spans = n.action_ids.map((tokenId, i) => el("span", {
      class: "tok", dataset: { i },
      title: `token ${i} · id ${tokenId} · entropy ${fmt(n.entropies[i], 4)} · logprob ${fmt(n.logprobs[i], 4)}`,
    }, ids ? String(tokenId) : n.pieces[i]));
    spans.forEach((span, i) => { span.style.background = heat(n.entropies[i], state.cap); });
    // text the tokens do not cover (e.g. an action stored without ids) is still shown, uncoloured
    const rest = !ids && !n.action_ids.length ? n.action_text : "";
    return el("div", { class: "heatmap" + (ids ? " ids" : ""), dataset: { node: n.id } }, spans, rest);
  }

  function toolCalls(calls) {
    if (!calls.length) return null;
    return el("table", { class: "calls" },
      el("tr", {}, ["tool", "arguments", "output", "latency", "error"].map((h) => el("th", {}, h))),
      calls.map((c) => el("tr", { class: c.error_type ? "call-error" : "" },
        el("td", { class: "mono" }, c.name),
        el("td", {}, el("pre", {}, JSON.stringify(c.arguments, null, 1))),
        el("td", {}, el("pre", {}, c.output)),
        el("td", { class: "num" }, fmt(c.latency_s * 1000, 1) + " ms"),
        el("td", { class: "error" }, c.error_type ? `${c.error_type}: ${c.error || ""}` : ""))));
  }

  // A stored image is a reference {sha256, mime, size} served by the viewer; an inline one is base64.
  function imageSrc(image) {
    if (typeof image === "object" && image && /^[0-9a-f]{64}$/.test(image.sha256)) return `/api/image/${image.sha256}`;
    const b64 = String(image);
    const kind = b64.startsWith("/9j/") ? "jpeg" : b64.startsWith("R0lGOD") ? "gif" : b64.startsWith("UklGR") ? "webp" : "png";
    return `data:image/${kind};base64,${b64}`;
  }

  // Generic on purpose: text, memory and images, plus any field a future env adds, shown as JSON.
  AG.observation = function (label, obs) {
    if (!obs) return null;
    const known = new Set(["text", "role", "memory", "images"]);
    const extra = Object.fromEntries(Object.entries(obs).filter(([k]) => !known.has(k)));
    return el("div", { class: "observation" },
      el("div", { class: "section-label" }, `${label} · role ${obs.role}`),
      obs.text ? el("pre", { class: "obs-text" }, obs.text) : el("span", { class: "muted" }, "(no text)"),
      obs.memory ? el("details", { class: "memory", open: true }, el("summary", {}, "memory / report"),
        el("pre", {}, obs.memory)) : null,
      (obs.images || []).map((image, i) => el("img", { class: "obs-image", alt: `observation image ${i + 1}`, src: imageSrc(image) })),
      Object.keys(extra).length ? el("pre", {}, JSON.stringify(extra, null, 1)) : null);
  };

  function siblingDiff(n) {
    const others = siblingsOf(n);
    if (!others.length) return null;
    const out = el("div", { class: "diff-out" });
    const picker = el("select", { class: "diff-with" }, others.map((id) => el("option", { value: id },
      `#${id}${state.tree.nodes[id].branch_entropy !== null ? " (branch)" : ""}`)));
    const run = async () => {
      out.replaceChildren(el("span", { class: "muted" }, "…"));
      try {
        const d = await AG.api(`/api/tree/${state.tree.n}/diff?a=${n.id}&b=${picker.value}`);
        out.replaceChildren(
          el("div", { class: "muted" }, `#${d.a} → leaf #${d.leaf_a} (R=${fmt(d.reward_a, 2)})  vs  ` +
            `#${d.b} → leaf #${d.leaf_b} (R=${fmt(d.reward_b, 2)}): deleted text is #${d.a}'s, inserted is #${d.b}'s`),
          el("div", { class: "diff" }, d.ops.map(([op, text]) =>
            op === "equal" ? text : el(op === "delete" ? "del" : "ins", {}, text))));
      } catch (err) {
        out.replaceChildren(el("span", { class: "error" }, err.message));
      }
    };
    return el("div", {}, el("div", { class: "section-label" }, "compare with a sibling branch"),
      el("div", { class: "toolbar" }, picker, el("button", { class: "diff-button", onclick: run }, "diff")), out);
  }

  function segmentOf(id) {  // "k/n": which training sequence of its path this turn was trained in
    for (const segs of Object.values(state.tree.segments || {})) {
      const k = segs.findIndex((s) => s.nodes.includes(id));
      if (k >= 0 && segs.length > 1) return `${k + 1}/${segs.length}`;
    }
    return null;
  }

  function turnCard(n) {
    const chips = [
      ["reward", n.reward], ["credit", n.credit_reward], ["advantage", n.advantage], ["tokens", n.action_ids.length],
      ["segment", segmentOf(n.id)],
      ["prefix", n.prefix_tokens], ["finish", n.finish_reason || null], ["gen", n.gen_time_s ? fmt(n.gen_time_s, 2) + " s" : null],
      ["env", n.env_time_s ? fmt(n.env_time_s, 3) + " s" : null], ["policy v", n.policy_version],
      ["max H", n.max_entropy !== null ? fmt(n.max_entropy, 2) : null],
    ].filter(([, v]) => v !== null && v !== undefined).map(([k, v]) =>
      el("span", { class: "chip" + (k === "reward" && v ? " " + AG.rewardClass(v) : "") }, `${k} ${fmt(v, 3)}`));
    const ended = n.terminated ? "terminated" : n.truncated ? `truncated (${n.truncated_reason || "?"})` : null;
    return el("section", { class: "turn", dataset: { node: n.id } },
      el("div", { class: "turn-head" },
        el("strong", {}, `Turn ${n.depth} · #${n.id}`), " ",
        n.branch_entropy !== null ? el("span", { class: "branch-note branch-marker-inline" },
          `⋔ branch from #${n.branched_from}, entropy ${fmt(n.branch_entropy, 3)} `) : null,
        chips, ended ? el("span", { class: "chip" }, ended) : null,
        n.leaf_reward !== null ? el("span", { class: "chip " + AG.rewardClass(n.leaf_reward) }, `final reward ${fmt(n.leaf_reward, 3)}`) : null),
      el("div", { class: "turn-body" },
        el("div", { class: "section-label" }, "action (colour = per-token entropy)"), heatmap(n),
        n.tool_calls.length ? el("div", { class: "section-label" }, "tool calls") : null, toolCalls(n.tool_calls),
        AG.observation("observation", n.observation),
        siblingDiff(n),
        Object.keys(n.info || {}).length ? el("details", {}, el("summary", {}, "info"),
          el("pre", {}, JSON.stringify(n.info, null, 1))) : null));
  }

  // ---- page ---------------------------------------------------------------------------------------
  function toolbar(tree) {
    const radio = (value, label) => el("label", {}, el("input", { type: "radio", name: "mode", id: "mode-" + value, value,
      checked: state.mode === value, onchange: () => { state.mode = value; redrawHeatmaps(); } }), " " + label);
    return el("div", { class: "toolbar" },
      el("span", {}, "tokens as ", radio("text", "text"), " ", radio("ids", "ids")),
      el("span", { class: "legend" }, "entropy 0", el("span", { class: "ramp" }, ""), `≥ ${fmt(state.cap, 2)} nats`),
      el("span", { class: tree.tokenizer.exact ? "muted" : "chip", id: "tokenizer-note" }, tree.tokenizer.note));
  }

  // Switching text/ids redraws only the heatmaps, so an open diff or scroll position is kept.
  function redrawHeatmaps() {
    for (const old of document.querySelectorAll("#detail .heatmap")) {
      old.replaceWith(heatmap(state.tree.nodes[Number(old.dataset.node)]));
    }
  }

  function renderDetail() {
    const tree = state.tree;
    const path = state.selected === null ? [] : pathTo(state.selected);
    const detail = el("div", { id: "detail", dataset: { selected: state.selected ?? "", path: path.join(",") } },
      toolbar(tree),
      AG.observation("reset observation", tree.initial_observation),
      path.map((id) => turnCard(tree.nodes[id])));
    document.getElementById("detail").replaceWith(detail);
    const onPath = new Set(path);
    for (const button of document.querySelectorAll("#tree-panel button.node")) {
      const id = Number(button.dataset.id);
      button.classList.toggle("selected", id === state.selected);
      button.classList.toggle("on-path", onPath.has(id));
    }
    document.getElementById("main").dataset.ready = "tree";
  }

  function select(id) {
    state.selected = id;
    history.replaceState(null, "", `#/tree/${state.tree.n}?node=${id}`);  // shareable, without re-routing
    renderDetail();
  }

  AG.pages.tree = async function (main, n, params) {
    const tree = await AG.api("/api/tree/" + n);
    const entropies = tree.nodes.flatMap((node) => node.entropies.filter((h) => h !== null));
    const wanted = params.has("node") ? Number(params.get("node")) : tree.default_node;
    state = { tree, mode: state ? state.mode : "text", cap: Math.max(0.5, percentile(entropies, 0.95)),
      selected: wanted !== null && wanted < tree.nodes.length ? wanted : tree.default_node };
    const title = tree.task.question || (tree.initial_observation && tree.initial_observation.text) || tree.id;
    main.replaceChildren(
      el("div", {}, el("a", { href: "#/" }, "← all trajectories")),
      el("h1", { class: "tree-title" }, title),
      el("div", {}, [["tree", tree.id], ["env", tree.env_id], ["seed", tree.seed], ["step", tree.step],
        ["policy v", tree.policy_version], ["file", tree.source]].map(([k, v]) => el("span", { class: "chip" }, `${k} ${v ?? "–"}`))),
      el("details", {}, el("summary", {}, "task row, timings, meta"),
        el("pre", {}, JSON.stringify({ task: tree.task, timings: tree.timings, meta: tree.meta }, null, 1))),
      el("div", { class: "tree-layout" }, branchTree(tree), el("div", { id: "detail" })));
    renderDetail();
  };
})();
