"""Screenshots in stored runs: content-addressed files beside the store, references in the lines, and no
line pointing to a missing image after a kill -9 at any point of a real run."""

import base64
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from agentgym.images import ImageError, ImageRef, ImageStore, image_hashes
from agentgym.store import TrajectoryStore
from agentgym.trajectory import Observation, TrajectoryTree, Turn

PIL = pytest.importorskip("PIL.Image")
EXPERT = "scripted:agentgym.envs.android.expert:android_expert"


def png(color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> str:
    buf = io.BytesIO()
    PIL.new("RGB", size, color).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def tree_with(images: list[list[str]], tree_id: str = "t") -> TrajectoryTree:
    tree = TrajectoryTree(id=tree_id, initial_observation=Observation(text="start", images=images[0]))
    parent = None
    for k, imgs in enumerate(images[1:]):
        parent = tree.add(Turn(id=0, parent=parent, prefix_ids=[1], action_ids=[2], logprobs=[-1.0],
                               observation=Observation(text=f"screen {k}", images=imgs))).id
    return tree


def referenced(store_path) -> list[dict]:
    """Every image reference in the intact lines of a store, read as raw JSON."""
    refs = []
    for line in TrajectoryStore(store_path).lines():
        if line.kind != "record":
            continue
        rec = json.loads(line.payload)
        observations = [rec.get("initial_observation")] + [n.get("observation") for n in rec["nodes"]]
        refs += [im for obs in observations if obs for im in obs["images"]]
    return refs


def check_all_present(run_dir) -> int:
    """Every referenced image exists, matches its hash and decodes; returns how many references."""
    refs = referenced(run_dir / "trajectories.jsonl")
    images = ImageStore(run_dir / "images")
    for ref in refs:
        assert isinstance(ref, dict), f"a line holds an inline image: {str(ref)[:40]}"
        data = images.read(ref)  # exists and matches its sha256
        assert len(data) == ref["size"]
        PIL.open(io.BytesIO(data)).load()  # decodes whole
    return len(refs)


def test_identical_images_are_stored_once_and_lines_hold_references(tmp_path):
    red, blue = png((255, 0, 0)), png((0, 0, 255))
    store = TrajectoryStore(tmp_path / "trajectories.jsonl")
    tree = tree_with([[red], [red], [blue, red], []])
    store.append(tree)
    store.append(tree_with([[blue]], "other"))
    files = sorted(p.name for p in (tmp_path / "images").iterdir())
    assert files == sorted(f"{hashlib.sha256(base64.b64decode(b)).hexdigest()}.png" for b in (red, blue))
    text = (tmp_path / "trajectories.jsonl").read_text()
    assert red[:40] not in text and blue[:40] not in text
    refs = referenced(tmp_path / "trajectories.jsonl")
    assert len(refs) == 5 and set(refs[0]) == {"sha256", "mime", "size"} and refs[0]["mime"] == "image/png"
    back = {t.id: t for t in store.read_all()}
    assert isinstance(back["t"].nodes[1].observation.images[0], ImageRef)
    assert image_hashes(back["t"].nodes[1].observation.images) == image_hashes([blue, red])
    assert tree.nodes[0].observation.images == [red]  # the caller's tree is left inline (it may still render it)


def test_bad_images_are_refused_at_the_env_boundary_and_hashes_validated(tmp_path):
    with pytest.raises(ValueError, match="not valid base64"):
        Observation(text="x", images=["not base64!"])
    with pytest.raises(ValueError, match="not a PNG, JPEG, GIF or WebP"):
        Observation(text="x", images=[base64.b64encode(b"hello world").decode()])
    images = ImageStore(tmp_path / "images")
    assert images.find("../../etc/passwd") is None and images.find("A" * 64) is None
    with pytest.raises(ValueError):
        ImageRef(sha256="../" + "0" * 61, mime="image/png", size=1)
    ref = images.put(base64.b64decode(png((1, 2, 3))))
    images.path(ref).write_bytes(b"\x89PNG\r\n\x1a\n tampered")
    with pytest.raises(ImageError, match="does not match its hash"):
        images.read(ref)


@pytest.mark.slow(ci=True)
def test_real_screenshot_run_stores_each_distinct_screen_once(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "agentgym.cli", "run", "agentgym/AndroidScreenshots-v0", "--policy", EXPERT,
           "--episodes", "2", "--group-size", "2", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    n_refs = check_all_present(out)
    hashes = [r["sha256"] for r in referenced(out / "trajectories.jsonl")]
    files = {p.stem for p in (out / "images").iterdir()}
    # two episodes per task from the same seed see the same screens: far more references than files
    assert n_refs == len(hashes) >= 2 * len(files) and files == set(hashes)
    assert b"iVBOR" not in (out / "trajectories.jsonl").read_bytes()  # no base64 PNG in any line


@pytest.mark.slow(ci=True)
def test_kill_9_during_a_screenshot_run_never_leaves_a_line_without_its_image(tmp_path):
    out = tmp_path / "run"
    rng = random.Random(7)
    cmd = [sys.executable, "-m", "agentgym.cli", "run", "agentgym/AndroidScreenshots-v0", "--policy", EXPERT,
           "--episodes", "40", "--out", str(out)]
    for attempt in range(4):
        proc = subprocess.Popen(cmd + ["--seed", str(100 * attempt)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        lines_before = len(referenced(out / "trajectories.jsonl")) if (out / "trajectories.jsonl").exists() else 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:  # wait until this run is writing
            if (out / "trajectories.jsonl").exists() and len(referenced(out / "trajectories.jsonl")) > lines_before:
                break
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 1.5))  # then kill it somewhere in the middle of its writes
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        check_all_present(out)
    assert check_all_present(out) > 0
    leftovers = [p for p in (out / "images").iterdir() if p.suffix == ".tmp"]
    assert all(p.name.startswith(".") for p in leftovers)  # a killed write leaves only a hidden temp file
