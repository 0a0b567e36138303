"""Asynchronous one-step-off-policy training (``trainer.max_staleness`` >= 1), as verl's one-step-off-policy
and AReaL's bounded-staleness modes do it.

Step k trains on batch k while a worker thread already generates batch k+1 on the sampler (which holds its
own weights, see `weight_sync`): generation and env steps overlap the update. Batch k+1 is therefore sampled
by policy version k and trained on by version k+1 — one step off-policy. Once both are done the trainer
pushes its new weights to the sampler (between rollouts, never during one) and the next step starts.

Every turn stores the policy version that sampled it; a tree's staleness is the trainer's version minus the
oldest version among its turns, stored in ``tree.meta["staleness"]``. Trees staler than the bound are not
trained on (kept in the store, marked ``meta["stale_dropped"]``) and counted in the ``stale_dropped`` metric:
with this schedule staleness is exactly 1, so the bound catches a sampler that lags behind (a push that did
not land, a server restarted on old weights). The off-policy gap of the kept ones is corrected by the
trainer's truncated importance weights (``trainer.tis_cap``); ``mismatch_*`` metrics show its size.

Crash safety: a checkpoint taken after step k also holds batch k+1 (generated before the save), so a
resumed run trains on the very batch the uninterrupted run would have, and re-seeding per step keeps the
rest identical. ``max_staleness: 0`` (the default) is the synchronous loop of `RLRun.train`, untouched.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from agentgym.trajectory import TrajectoryTree


@dataclass
class Rollout:
    """One step's sampled trees with the rollout engine's stats and wall time."""

    trees: list[TrajectoryTree]
    stats: dict[str, float]
    seconds: float

    def state(self) -> dict[str, Any]:
        return {"trees": [t.model_dump_json() for t in self.trees], "stats": self.stats, "seconds": self.seconds}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Rollout:
        return cls([TrajectoryTree.model_validate_json(t) for t in state["trees"]], dict(state["stats"]),
                   float(state["seconds"]))


def drop_stale(trees: list[TrajectoryTree], version: int, bound: int) -> tuple[list[TrajectoryTree], int, float]:
    """(trees within `bound` versions of the trainer's `version`, how many were dropped, mean staleness)."""
    kept, dropped, total = [], 0, 0
    for tree in trees:
        versions = [n.policy_version for n in tree.nodes if n.action_ids] or [tree.policy_version]
        staleness = version - min(versions)
        tree.meta["staleness"] = staleness
        total += staleness
        if staleness > bound:
            tree.meta["stale_dropped"] = True
            dropped += 1
        else:
            kept.append(tree)
    return kept, dropped, total / max(len(trees), 1)


def train_async(run: Any) -> list[dict[str, Any]]:
    """`RLRun.train` with generation of step k+1 overlapping the update of step k."""
    cfg = run.cfg
    steps, every = cfg.trainer.steps, cfg.trainer.checkpoint_every
    history: list[dict[str, Any]] = []
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentgym-async-rollout")
    try:
        batch = run.pending if run.pending is not None else (run.rollout(run.start_step) if run.start_step < steps else None)
        for step in range(run.start_step, steps):
            following = pool.submit(run.rollout, step + 1) if step + 1 < steps else None
            history.append(run.learn(step, batch))
            batch = following.result() if following is not None else None
            run.push_weights()  # the rollout above has finished: the swap falls between rollouts
            if every and (step + 1) % every == 0:
                run.save(step + 1, pending=batch)
        if steps > run.start_step and (not every or steps % every):
            run.save(steps)
        run.group.finish(run.trainer)
    finally:
        pool.shutdown(wait=True)
        run.close()
    return history
