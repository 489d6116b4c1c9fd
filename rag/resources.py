"""Files the program reads at run time besides its code: the prompt templates and the model catalogue.

In the repository they sit at the top (`prompts/`, `models.txt`), where they are edited; the wheel
and the sdist carry them inside the package as `rag/data/prompts/` and `rag/data/models.txt`
(pyproject.toml, `force-include`). They are found through `importlib.resources`; an editable
install, whose package folder has no copy, reads them from the checkout.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

_PACKAGE_DATA = "data"
_CHECKOUT = Path(__file__).resolve().parent.parent


def resource_path(name: str) -> Path:
    """Where the shipped file or folder `name` is: in the installed package, else in the checkout.

    If neither has it (a damaged install), the package's location, so that errors name the place
    the file should be.
    """
    packaged = files(__package__ or "rag").joinpath(_PACKAGE_DATA, name)
    packaged_path = packaged if isinstance(packaged, Path) else Path(str(packaged))
    if packaged_path.exists():
        return packaged_path
    checkout = _CHECKOUT / name
    if checkout.exists() and (_CHECKOUT / "pyproject.toml").is_file():
        return checkout
    return packaged_path


def prompts_dir() -> Path:
    """The folder of prompt templates shipped with the program."""
    return resource_path("prompts")


def models_file() -> Path:
    """The model catalogue shipped with the program."""
    return resource_path("models.txt")
