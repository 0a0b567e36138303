"""How long a 10,000-tree trajectory file takes to open in the viewer.

Measured from creating the server (which reads and summarises the whole file) until the first list page
is rendered in headless Chromium (the browser is already running, as a user's would be). Also times the
interactions that follow: a filter, the first text search (which may wait for the background search
index), a repeated search, and opening a tree. Target: open <= 2 s. The file is realistic synthetic data
(GRPO groups with ARPO branches, tool calls, memory and image observations; see
agentgym.viewer.synthetic), written once per run to a temporary directory.

Usage: python bench/bench_viewer.py [--quick] [--trees 10000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from agentgym.store import TrajectoryStore
from agentgym.viewer.browser import browser_missing, chromium
from agentgym.viewer.server import ViewerServer
from agentgym.viewer.synthetic import synthetic_metrics, synthetic_tree

TARGET_S = 2.0


def build_file(folder: Path, n: int) -> Path:
    rng = random.Random(0)
    store = TrajectoryStore(folder / "trajectories.jsonl", fsync=False)
    batch = []
    for i in range(n):
        batch.append(synthetic_tree(i, random.Random(rng.getrandbits(64))))
        if len(batch) == 500:
            store.append_many(batch)
            batch = []
    store.append_many(batch)
    import json

    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in synthetic_metrics(n // 16)))
    return folder


def open_once(context, run: Path) -> dict[str, float]:
    page = context.new_page()
    t0 = time.perf_counter()
    server = ViewerServer(run).start()
    t_parsed = time.perf_counter()
    page.goto(server.url)
    page.wait_for_selector("#main[data-ready=list]")
    t_listed = time.perf_counter()
    out = {"open": t_listed - t0, "parse": t_parsed - t0, "page": t_listed - t_parsed,
           "trees": len(server.viewer.index.summaries),
           "trajectories": sum(s.trajectories for s in server.viewer.index.summaries)}
    t = time.perf_counter()
    page.select_option("#f-errors", "yes")
    page.wait_for_selector("#list-count:not([data-total='%d'])" % out["trees"])
    out["filter"] = time.perf_counter() - t - 0.12  # minus the page's debounce of form changes
    for key, word in (("search_first", "division by zero"), ("search_again", "caffeine")):
        t = time.perf_counter()
        before = page.get_attribute("#list-count", "data-total")
        page.fill("#f-q", word)
        page.wait_for_selector(f"#list-count:not([data-total='{before}'])")
        out[key] = time.perf_counter() - t - 0.25  # minus the page's typing debounce
    biggest = max(server.viewer.index.summaries, key=lambda s: s.tokens)
    t = time.perf_counter()
    page.goto(server.url + f"#/tree/{biggest.n}")
    page.wait_for_selector("#main[data-ready=tree]")
    out["tree"] = time.perf_counter() - t
    out["tree_tokens"] = biggest.tokens
    page.close()
    server.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one measurement instead of three")
    parser.add_argument("--trees", type=int, default=10_000)
    args = parser.parse_args()
    if (why := browser_missing()) is not None:
        raise SystemExit(f"bench_viewer needs Chromium and playwright: {why}")
    with tempfile.TemporaryDirectory(prefix="agentgym-bench-viewer-") as tmp:
        t = time.perf_counter()
        run = build_file(Path(tmp), args.trees)
        size_mb = (run / "trajectories.jsonl").stat().st_size / 1e6
        print(f"built {args.trees:,} trees ({size_mb:.0f} MB) in {time.perf_counter() - t:.1f} s")
        with chromium() as context:
            runs = [open_once(context, run) for _ in range(1 if args.quick else 3)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    verdict = "OK" if med["open"] <= TARGET_S else "OVER TARGET"
    print(f"viewer open, {int(med['trees']):,} trees / {int(med['trajectories']):,} trajectories ({size_mb:.0f} MB): "
          f"{med['open']:.2f} s = server parse {med['parse']:.2f} s + first list page in Chromium {med['page']:.2f} s "
          f"(target <= {TARGET_S:.0f} s: {verdict}; median of {len(runs)})")
    print(f"then: filter {med['filter'] * 1000:.0f} ms, first text search {med['search_first'] * 1000:.0f} ms, "
          f"next search {med['search_again'] * 1000:.0f} ms, open the largest tree ({int(med['tree_tokens']):,} "
          f"sampled tokens) {med['tree'] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
