"""Versioned Jinja prompt sets shipped as package data (`<package>/<directory>/<name>.jinja`), rendered by name."""

from __future__ import annotations

from importlib import resources
from typing import Any

import jinja2


def prompt_directories(package: str) -> list[str]:
    """The template directories (prompt versions) of `package`, sorted; `_`-prefixed ones are skipped."""
    return sorted(entry.name for entry in resources.files(package).iterdir()
                  if entry.is_dir() and not entry.name.startswith("_"))


class PromptSet:
    """The templates of one directory of a package; `version` (default: the directory) goes into record meta.

    Templates render with StrictUndefined (a missing value is an error, not an empty string), trim_blocks
    and lstrip_blocks; the output is stripped. Each template is read and compiled once per set.
    """

    def __init__(self, package: str, directory: str = "v1", version: str | None = None):
        self.package = package
        self.directory = directory
        self.version = version or directory
        self._environment = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True,
                                               lstrip_blocks=True, keep_trailing_newline=False, autoescape=False)
        self._templates: dict[str, jinja2.Template] = {}

    def template(self, name: str, /) -> jinja2.Template:
        """The compiled template `name` (without `.jinja`)."""
        if name not in self._templates:
            source = resources.files(self.package).joinpath(self.directory, f"{name}.jinja").read_text(encoding="utf-8")
            self._templates[name] = self._environment.from_string(source)
        return self._templates[name]

    def render(self, name: str, /, **values: Any) -> str:
        """The text of template `name` with `values`, surrounding whitespace stripped."""
        return self.template(name).render(**values).strip()
