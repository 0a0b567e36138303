"""Screenshots in the viewer: a real screenshot run (the simulated phone driven by its scripted expert) is
stored with its images beside the trajectories; the viewer serves them only by hash, with the usual host
check, and the page shows each turn's screenshot beside its text in headless Chromium."""

from __future__ import annotations

import base64
import hashlib
import io
import json

import pytest

from agentgym.registry import make
from agentgym.rollout import RolloutConfig, RolloutEngine
from agentgym.store import TrajectoryStore
from agentgym.viewer.browser import browser_missing, chromium
from agentgym.viewer.server import ViewerServer
from agentgym.viewer.treeview import default_node
from test_viewer_server import get

PIL = pytest.importorskip("PIL.Image")
PHONE = "agentgym/AndroidScreenshots-v0"


@pytest.fixture(scope="module")
def phone_run(tmp_path_factory):
    from agentgym.envs.android.expert import android_expert
    from agentgym.policies.scripted import ScriptedPolicy

    run = tmp_path_factory.mktemp("phone-run")
    engine = RolloutEngine(ScriptedPolicy(android_expert), lambda: make(PHONE), env_id=PHONE,
                           config=RolloutConfig(group_size=1))
    TrajectoryStore(run / "trajectories.jsonl").append_many(engine.run([0, 1]))
    (run / "run.json").write_text(json.dumps({"env_id": PHONE, "tokenizer": "embedded"}))
    return run


@pytest.fixture(scope="module")
def server(phone_run):
    with ViewerServer(phone_run) as srv:
        yield srv


def test_images_are_served_by_hash_only(server, phone_run):
    stored = sorted((phone_run / "images").iterdir())
    assert stored
    name = stored[0].stem
    status, headers, body = get(server, f"/api/image/{name}")
    assert status == 200 and headers["Content-Type"] == "image/png" and hashlib.sha256(body).hexdigest() == name
    PIL.open(io.BytesIO(body)).load()
    for bad in ("../trajectories.jsonl", "..%2f..%2fetc%2fpasswd", name.upper(), name[:-1], name + "0",
                f"{name}.png", "%00" + name[2:], "/etc/passwd"):
        status, _, body = get(server, f"/api/image/{bad}")
        assert status == 400 and b"sha256" in body, bad
    status, _, _ = get(server, "/api/image/" + "0" * 64)
    assert status == 404
    status, _, _ = get(server, f"/api/image/{name}", host="evil.example:80")  # DNS rebinding: refused
    assert status == 403


def test_tree_json_holds_references_not_bytes(server):
    status, _, body = get(server, "/api/tree/0")
    tree = json.loads(body)
    images = [im for n in tree["nodes"] if n.get("observation") for im in n["observation"]["images"]]
    assert status == 200 and images and all(set(im) == {"sha256", "mime", "size"} for im in images)


@pytest.mark.browser
@pytest.mark.skipif(browser_missing() is not None, reason=f"needs Chromium and playwright: {browser_missing()}")
def test_page_shows_each_turns_screenshot_beside_its_text(server, phone_run):
    (tree, _) = TrajectoryStore(phone_run / "trajectories.jsonl").read_all()
    path = tree.path(default_node(tree))
    observations = [tree.initial_observation] + [t.observation for t in path if t.observation]
    shots = [im for obs in observations for im in obs.images]
    width, height = PIL.open(phone_run / "images" / f"{shots[0].sha256}.png").size
    with chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url + "#/tree/0")
        page.wait_for_selector("#main[data-ready=tree]")
        assert page.locator("img.obs-image").count() == len(shots)
        page.wait_for_function(f"[...document.querySelectorAll('img.obs-image')].every(i => i.complete && "
                               f"i.naturalWidth === {width} && i.naturalHeight === {height})")
        sources = page.eval_on_selector_all("img.obs-image", "els => els.map(e => e.getAttribute('src'))")
        assert sources == [f"/api/image/{im.sha256}" for im in shots]
        # each image sits in the observation block of its turn, with that turn's text
        texts = page.eval_on_selector_all("img.obs-image", "els => els.map(e => e.closest('.observation')"
                                          ".querySelector('.obs-text').textContent)")
        expected = [obs.text for obs in observations for _ in obs.images]
        assert texts == expected
        shot = PIL.open(io.BytesIO(page.locator("img.obs-image").first.screenshot()))
        assert shot.size[0] > 10 and len(shot.convert("L").getcolors(maxcolors=1 << 16) or range(3)) > 2  # a real picture, not blank
        assert errors == []


def test_re_execution_compares_stored_references_with_fresh_screenshots_by_content(phone_run):
    from agentgym.images import ImageStore
    from agentgym.replay import _compare
    from agentgym.trajectory import Observation

    tree = TrajectoryStore(phone_run / "trajectories.jsonl").read_all()[0]
    stored = tree.initial_observation  # references, as read back from the store
    images = ImageStore(phone_run / "images")
    fresh = [base64.b64encode(images.read(ref)).decode() for ref in stored.images]  # what an env returns
    assert _compare(stored, Observation(text=stored.text, images=fresh)) is None
    other = [base64.b64encode(images.read(tree.nodes[-1].observation.images[0])).decode()]
    assert _compare(stored, Observation(text=stored.text, images=other))[0] == "observation.images"
