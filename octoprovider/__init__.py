"""octoprovider's version lives in one place, pyproject.toml's `version`: the checkout runs as it is, not
installed as a package, so it is read from there (an installed copy asks its own metadata)."""

import tomllib
from importlib import metadata
from pathlib import Path


def _version() -> str:
    try:
        with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as pyproject:
            return tomllib.load(pyproject)["project"]["version"]
    except FileNotFoundError:
        return metadata.version("octoprovider")


__version__ = _version()
