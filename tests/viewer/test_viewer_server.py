"""The viewer's HTTP API and static files, over a real loopback socket (no browser needed)."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlencode

import pytest

from agentgym.viewer.server import CSP, ViewerServer
from viewer_helpers import small_trees, write_bad_run


def get(server: ViewerServer, path: str, host: str | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", path, headers={"Host": host or f"127.0.0.1:{server.port}"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), body


def api(server: ViewerServer, path: str, **params) -> dict:
    status, _, body = get(server, path + ("?" + urlencode(params) if params else ""))
    assert status == 200, body
    return json.loads(body)


@pytest.fixture(scope="module")
def server(run_1k):
    with ViewerServer(run_1k) as srv:
        yield srv


def test_run_overview_and_pages(server, trees_1k):
    run = api(server, "/api/run")
    assert run["trees"] == 1000 and run["trajectories"] == sum(t.n_trajectories() for t in trees_1k)
    assert run["envs"] == sorted({t.env_id for t in trees_1k}) and run["messages"] == []
    first = api(server, "/api/trees", limit=100)
    assert first["total"] == 1000 and [r["id"] for r in first["items"]] == [t.id for t in trees_1k[:100]]
    last = api(server, "/api/trees", offset=950, limit=100)
    assert [r["n"] for r in last["items"]] == list(range(950, 1000))
    phone = api(server, "/api/trees", env="agentgym/Phone-v0", errors="no", q="wi-fi")
    assert phone["total"] == sum(1 for t in trees_1k if t.env_id == "agentgym/Phone-v0"
                                 and not any(c.error_type for n in t.nodes for c in n.tool_calls))


def test_tree_and_diff(server, trees_1k):
    n = next(i for i, t in enumerate(trees_1k) if t.branch_points())
    tree = api(server, f"/api/tree/{n}")
    assert tree["id"] == trees_1k[n].id and tree["branch_points"] == trees_1k[n].branch_points()
    assert [len(node["pieces"]) for node in tree["nodes"]] == [len(node.action_ids) for node in trees_1k[n].nodes]
    assert tree["tokenizer"]["exact"] is False  # the synthetic run names no tokenizer
    branch = trees_1k[n].nodes[trees_1k[n].branch_points()[0]]
    diff = api(server, f"/api/tree/{n}/diff", a=branch.branched_from, b=branch.id)
    assert {op for op, _ in diff["ops"]} <= {"equal", "delete", "insert"} and diff["b"] == branch.id


def test_metrics(server):
    metrics = api(server, "/api/metrics")
    assert {"reward", "accuracy", "entropy", "time_update_s"} <= set(metrics["keys"]) and "note" not in metrics["keys"]
    assert metrics["step_stats"][0]["step"] == 0 and metrics["step_stats"][0]["trees"] == 16


def test_errors_are_json_and_clear(server):
    for path, status, text in [("/api/tree/100000", 404, "no tree #100000"), ("/api/nope", 404, "no route"),
                               ("/api/trees?rmin=abc", 400, "not a number"), ("/api/tree/0/diff", 400, "a=NODE"),
                               ("/api/tree/0/diff?a=0&b=999", 400, "no node 999"),
                               ("/static/../server.py", 404, "no static")]:
        code, _, body = get(server, path)
        assert code == status and text in json.loads(body)["error"], (path, body)


def test_static_files_headers_and_host_check(server):
    code, headers, body = get(server, "/")
    assert code == 200 and b"/static/app.js" in body and headers["Content-Security-Policy"] == CSP
    for name in ("app.js", "tree.js", "dashboard.js", "style.css"):
        code, headers, body = get(server, f"/static/{name}")
        assert code == 200 and len(body) > 500 and "http" not in headers["Content-Type"]
        assert b"https://" not in body and b"http://" not in body.replace(b"http://www.w3.org/2000/svg", b"")  # no CDN
    assert get(server, "/", host="evil.example:80")[0] == 403  # DNS rebinding: foreign Host header refused
    with pytest.raises(ValueError, match="loopback"):
        ViewerServer(".", host="0.0.0.0")


def test_bad_run_is_served_with_messages(tmp_path):
    with ViewerServer(write_bad_run(tmp_path / "bad")) as srv:
        run = api(srv, "/api/run")
        assert run["trees"] == 4 and any("torn" in m for m in run["messages"])
        assert any("metrics.jsonl:2: not JSON" in m for m in run["messages"])
        assert api(srv, "/api/trees")["total"] == 4
        assert api(srv, "/api/tree/3")["nodes"]


def test_a_record_that_fails_the_schema_is_listed_but_explained(tmp_path):
    from agentgym.store import encode_record

    rec = small_trees(1)[0].model_dump(mode="json")
    rec["nodes"][0]["reward"] = "not a number"
    (tmp_path / "trajectories.jsonl").write_bytes(encode_record(json.dumps(rec, separators=(",", ":")).encode()))
    with ViewerServer(tmp_path) as srv:
        assert api(srv, "/api/trees")["total"] == 1
        code, _, body = get(srv, "/api/tree/0")
        assert code == 422 and "reward" in json.loads(body)["error"]
