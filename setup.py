"""Maps the top-level folders into the `agentgym` namespace (see DESIGN.md, "Layout").

pyproject.toml cannot discover sub-packages of remapped folders, so they are listed here; everything
else about the build lives in pyproject.toml.
"""

from setuptools import find_packages, setup

ROOTS = {
    "agentgym": "agentgym",
    "agentgym.envs": "envs",
    "agentgym.sandboxes": "sandboxes",
    "agentgym.trainers": "trainers",
}

packages = []
for name, folder in ROOTS.items():
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir=ROOTS)
