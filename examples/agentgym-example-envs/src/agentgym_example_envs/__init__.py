"""Example agentgym envs, registered by the `agentgym.envs` entry point of this package."""

import agentgym


def register_envs() -> None:
    """Called once per process by agentgym (on `import agentgym`). Registration is lazy: the env modules
    are imported only when an env is made."""
    agentgym.register("example/GuessNumber-v0", "agentgym_example_envs.guess:GuessNumberEnv")
    agentgym.register("example/Glossary-v0", "agentgym_example_envs.glossary:GlossaryEnv")
