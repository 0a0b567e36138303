"""The viewer in real headless Chromium: a 1,000-tree run is listed, filtered and paged; a branched tree
shows its branch markers and a per-token entropy heatmap; observations show memory and images; the
dashboard plots every metric; bad input shows a banner; model text never runs as HTML. A screenshot is
checked for what it shows, not just taken."""

from __future__ import annotations

import io

import numpy as np
import pytest

from agentgym.store import TrajectoryStore
from agentgym.viewer.browser import browser_missing, chromium
from agentgym.viewer.server import ViewerServer
from agentgym.viewer.treeview import default_node
from viewer_helpers import small_trees, write_bad_run

pytestmark = pytest.mark.browser
if (why := browser_missing()) is not None:
    pytest.skip(f"browser tests need Chromium and playwright: {why}", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with chromium() as context:
        yield context


@pytest.fixture(scope="module")
def server(run_1k):
    with ViewerServer(run_1k) as srv:
        yield srv


@pytest.fixture
def page(browser):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    page.close()
    assert errors == [], errors  # no uncaught script error on any page


def open_hash(page, server, route: str, ready: str) -> None:
    page.goto(server.url + route)
    page.wait_for_selector(f"#main[data-ready={ready}]")


def wait_total(page, total: int) -> None:
    page.wait_for_selector(f'#list-count[data-total="{total}"]')


def test_list_filters_search_and_pages(page, server, trees_1k):
    open_hash(page, server, "#/", "list")
    assert page.locator("tr.tree-row").count() == 100
    wait_total(page, 1000)
    phone = [t for t in trees_1k if t.env_id == "agentgym/Phone-v0"]
    page.select_option("#f-env", "agentgym/Phone-v0")
    wait_total(page, len(phone))
    assert set(page.locator("tr.tree-row td:nth-child(3)").all_inner_texts()) == {"Phone-v0"}
    page.select_option("#f-env", "")
    page.fill("#f-rmin", "0.9")
    wait_total(page, sum(1 for t in trees_1k if t.summary()["mean_reward"] >= 0.9))
    page.fill("#f-rmin", "")
    page.fill("#f-q", "division by zero")
    wanted = sum(1 for t in trees_1k if any(n.observation and "Division by zero" in n.observation.text for n in t.nodes))
    wait_total(page, wanted)
    page.click("#f-clear")
    wait_total(page, 1000)
    page.click("#next-page")
    page.wait_for_selector("#page-info:has-text('101–200 of 1,000')")
    assert page.locator("tr.tree-row").first.get_attribute("data-n") == "100"


def test_branched_tree_markers_heatmap_and_diff(page, server, trees_1k):
    n, tree = next((i, t) for i, t in enumerate(trees_1k) if len(t.branch_points()) >= 2)
    open_hash(page, server, "#/?branched=yes", "list")
    page.click(f"tr.tree-row[data-n='{n}']")
    page.wait_for_selector("#main[data-ready=tree]")
    assert page.locator("#tree-panel .branch-marker").count() == len(tree.branch_points())
    assert page.locator("#tree-panel button.node").count() == len(tree.nodes)
    selected = default_node(tree)
    assert page.get_attribute("#detail", "data-selected") == str(selected)
    path = tree.path(selected)
    assert page.locator("#detail .heatmap .tok").count() == sum(len(t.action_ids) for t in path)
    for turn in path:  # the approximate text view still spells out the whole action, token by token
        assert page.inner_text(f".heatmap[data-node='{turn.id}']") == turn.action_text
    hottest = max(range(len(path[-1].action_ids)), key=lambda i: path[-1].entropies[i])
    title = page.get_attribute(f".heatmap[data-node='{path[-1].id}'] .tok[data-i='{hottest}']", "title")
    assert f"entropy {path[-1].entropies[hottest]:.4f}" in title
    page.click("#mode-ids")
    assert page.locator("#detail .heatmap.ids .tok").count() == sum(len(t.action_ids) for t in path)
    assert page.inner_text(".heatmap.ids .tok >> nth=0") == str(path[0].action_ids[0])
    other = next(leaf for leaf in tree.leaves() if leaf != selected)
    page.click(f"#tree-panel button.node[data-id='{other}']")
    page.wait_for_selector(f"#detail[data-selected='{other}']")
    assert page.locator("#detail .heatmap .tok").count() == sum(len(t.action_ids) for t in tree.path(other))
    branch = tree.branch_points()[0]
    page.click(f"#tree-panel button.node[data-id='{branch}']")
    page.click(f".turn[data-node='{branch}'] .diff-button")
    page.wait_for_selector(f".turn[data-node='{branch}'] .diff")
    assert page.locator(f".turn[data-node='{branch}'] .diff ins, .turn[data-node='{branch}'] .diff del").count() > 0


def test_memory_images_tool_errors(page, server, trees_1k):
    research = trees_1k[1]
    open_hash(page, server, "#/tree/1", "tree")
    memories = [t.observation.memory for t in research.path(default_node(research))
                if t.observation and t.observation.memory]
    assert memories and page.locator("#detail .memory pre").all_inner_texts() == memories
    phone = trees_1k[2]
    open_hash(page, server, "#/tree/2", "tree")
    images = sum(len(t.observation.images) for t in phone.path(default_node(phone)) if t.observation)
    assert images and page.locator("img.obs-image").count() == images
    page.wait_for_function("[...document.querySelectorAll('img.obs-image')]"
                           ".every(i => i.complete && i.naturalWidth === 48)")
    n = next(i for i, t in enumerate(trees_1k) if any(c.error_type for nd in t.nodes for c in nd.tool_calls))
    erring = next(nd for nd in trees_1k[n].nodes if any(c.error_type for c in nd.tool_calls))
    open_hash(page, server, f"#/tree/{n}?node={erring.id}", "tree")
    assert page.locator("tr.call-error").count() >= 1
    assert "Division by zero" in page.inner_text("tr.call-error") or "timeout" in page.inner_text("tr.call-error")


def test_screenshot_shows_the_tree_and_the_heatmap(page, server, trees_1k):
    from PIL import Image

    n = next(i for i, t in enumerate(trees_1k) if t.branch_points())
    open_hash(page, server, f"#/tree/{n}", "tree")
    full = np.asarray(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB"), dtype=float)
    assert full.std() > 20  # not a blank page
    heat = np.asarray(Image.open(io.BytesIO(page.locator("#detail .heatmap").first.screenshot())).convert("RGB"), dtype=int)
    reddish = (heat[..., 0] > 200) & (heat[..., 0] - heat[..., 2] > 40)
    assert reddish.sum() > 30  # entropy colours are painted
    panel = np.asarray(Image.open(io.BytesIO(page.locator("#tree-panel").screenshot())).convert("L"), dtype=float)
    assert panel.std() > 15


def test_dashboard_plots_every_metric(page, server):
    open_hash(page, server, "#/dashboard", "dashboard")
    keys = page.locator("#metric-charts .chart").evaluate_all("cs => cs.map(c => c.dataset.key)")
    assert set(keys) == {"reward", "accuracy", "entropy", "tool_calls", "tokens_per_s", "time_generation_s",
                         "time_env_s", "time_update_s"}
    points = page.locator("#metric-charts polyline").first.get_attribute("points").split()
    assert len(points) == 1000 // 16
    assert page.locator("#tree-charts .chart").count() >= 4


def test_bad_run_shows_messages_and_what_is_readable(page, tmp_path):
    with ViewerServer(write_bad_run(tmp_path / "bad")) as srv:
        open_hash(page, srv, "#/", "list")
        banner = page.inner_text("#banner")
        for text in ("torn last record", "schema version 99", "corrupt record", "not a trajectory store", "not JSON"):
            assert text in banner, text
        assert page.locator("tr.tree-row").count() == 4


def test_model_text_is_shown_as_text_never_run(page, tmp_path):
    tree = small_trees(1)[0]
    evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    tree.nodes[0].action_text = evil
    tree.nodes[0].action_ids, tree.nodes[0].entropies, tree.nodes[0].logprobs = [1, 2, 3], [0.1, 2.0, 0.3], [0, 0, 0]
    tree.task["question"] = evil
    TrajectoryStore(tmp_path / "trajectories.jsonl", fsync=False).append(tree)
    with ViewerServer(tmp_path) as srv:
        open_hash(page, srv, "#/", "list")
        open_hash(page, srv, "#/tree/0?node=0", "tree")
        assert page.inner_text(".heatmap[data-node='0']") == evil
        assert page.evaluate("window.__pwned") is None
        assert page.locator("#detail img:not(.obs-image)").count() == 0
