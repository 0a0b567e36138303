"""The local trajectory viewer: `agentgym view RUN_OR_FILE`.

`RunIndex` reads a run once into list summaries, `ViewerServer` serves the pages in ``static/`` and a
small JSON API on loopback, and `synthetic` builds realistic demo runs. Nothing here imports torch.
"""

from agentgym.viewer.index import RunIndex, TreeSummary
from agentgym.viewer.server import Viewer, ViewerServer

__all__ = ["RunIndex", "TreeSummary", "Viewer", "ViewerServer"]
