// agentgym viewer: the training dashboard. One small line chart per numeric key of metrics.jsonl (whatever
// keys the trainer wrote), then per-step aggregates computed from the stored trees themselves.
"use strict";
(function () {
  const el = AG.el, fmt = AG.fmt;
  const W = 320, H = 150, PAD = { left: 50, right: 8, top: 8, bottom: 20 };

  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }

  function chart(name, points) {
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const lo = (v) => v.reduce((a, b) => Math.min(a, b)), hi = (v) => v.reduce((a, b) => Math.max(a, b));
    const [x0, x1] = [lo(xs), hi(xs)];
    let [y0, y1] = [lo(ys), hi(ys)];
    if (y0 === y1) { y0 -= 1; y1 += 1; }  // a flat series still gets a visible line in the middle
    const sx = (x) => PAD.left + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);
    const sy = (y) => H - PAD.bottom - ((y - y0) / (y1 - y0)) * (H - PAD.top - PAD.bottom);
    const plot = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": name });
    for (const y of [y0, (y0 + y1) / 2, y1]) {
      plot.append(svg("line", { class: "grid", x1: PAD.left, x2: W - PAD.right, y1: sy(y), y2: sy(y) }));
      const label = svg("text", { class: "axis", x: PAD.left - 4, y: sy(y) + 3, "text-anchor": "end" });
      label.textContent = String(Number(y.toPrecision(4)));  // short tick labels: 4 significant digits
      plot.append(label);
    }
    for (const [x, anchor] of [[x0, "start"], [x1, "end"]]) {
      const label = svg("text", { class: "axis", x: sx(x), y: H - 5, "text-anchor": anchor });
      label.textContent = fmt(x, 0);
      plot.append(label);
    }
    plot.append(svg("polyline", { class: "line", points: points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ") }));
    const cursor = svg("line", { class: "cursor", y1: PAD.top, y2: H - PAD.bottom, visibility: "hidden" });
    plot.append(cursor);
    const readout = el("div", { class: "readout" }, `last ${fmt(ys[ys.length - 1])} · min ${fmt(lo(ys))} · max ${fmt(hi(ys))}`);
    plot.addEventListener("mousemove", (event) => {
      const box = plot.getBoundingClientRect();
      const x = x0 + ((event.clientX - box.left) / box.width * W - PAD.left) / (W - PAD.left - PAD.right) * (x1 - x0);
      let best = 0;
      for (let i = 1; i < xs.length; i++) if (Math.abs(xs[i] - x) < Math.abs(xs[best] - x)) best = i;
      cursor.setAttribute("x1", sx(xs[best]));
      cursor.setAttribute("x2", sx(xs[best]));
      cursor.setAttribute("visibility", "visible");
      readout.textContent = `step ${fmt(xs[best], 0)}: ${fmt(ys[best], 4)}`;
    });
    return el("div", { class: "chart", dataset: { key: name } }, el("h3", {}, name), plot, readout);
  }

  AG.pages.dashboard = async function (main) {
    const m = await AG.api("/api/metrics");
    const fromTrees = {};
    for (const row of m.step_stats) {
      for (const [key, value] of Object.entries(row)) {
        if (key !== "step") (fromTrees[key] = fromTrees[key] || []).push([row.step, value]);
      }
    }
    main.replaceChildren(
      el("h2", {}, "Training metrics"),
      m.path ? el("p", { class: "muted" }, `${m.path}: ${m.rows} steps, ${m.keys.length} numeric series`)
        : el("p", { class: "muted", id: "no-metrics" }, "This run has no metrics.jsonl."),
      el("div", { class: "charts", id: "metric-charts" }, m.keys.map((key) => chart(key, m.series[key]))),
      el("h2", {}, "From the stored trees, per training step"),
      m.step_stats.length ? el("div", { class: "charts", id: "tree-charts" },
        Object.entries(fromTrees).map(([key, points]) => chart(key, points)))
        : el("p", { class: "muted" }, "No tree records a training step."));
    main.dataset.ready = "dashboard";
  };
})();
