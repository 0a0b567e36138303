"""`RLRun(...).train()` with resume, on the toy LetterE env; launched by torchrun (or run as one process)
from test_distributed.py. argv[1]: the config as JSON."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import agentgym  # noqa: E402

agentgym.register("agentgym/TestLetterE-v0", "toy_envs:LetterE")

from agentgym.config import load_config  # noqa: E402
from agentgym.trainers.rl import RLRun  # noqa: E402

if __name__ == "__main__":
    RLRun(load_config(**json.loads(sys.argv[1])), resume=True, quiet=True).train()
