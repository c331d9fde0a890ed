"""chat.prompts.PromptSet: strict, trimmed, stripped, cached rendering of a package's versioned templates."""

from __future__ import annotations

import sys

import jinja2
import pytest

from chat.errors import ConfigError
from chat.prompts import PromptSet, prompt_directories


@pytest.fixture
def prompt_package(tmp_path, monkeypatch):
    """An importable package `demo_prompts` with template sets v1 and v2 (and a private _drafts folder)."""
    package = tmp_path / "demo_prompts"
    for directory in ("v1", "v2", "_drafts"):
        (package / directory).mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "v1" / "greet.jinja").write_text(
        "\n  Hello {{ name }}!\n    {% for item in items %}\n  - {{ item }}\n    {% endfor %}\n\n")
    (package / "v2" / "greet.jinja").write_text("Hi {{ name }}.")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("demo_prompts", None)     # each test imports its own copy
    yield package
    sys.modules.pop("demo_prompts", None)


def test_a_template_may_use_a_value_called_name(prompt_package):
    assert PromptSet("demo_prompts", "v2").render("greet", name="Ada") == "Hi Ada."


def test_render_trims_block_lines_and_strips_the_output(prompt_package):
    prompts = PromptSet("demo_prompts")
    assert prompts.render("greet", name="Ada", items=["a", "b"]) == "Hello Ada!\n  - a\n  - b"


def test_a_missing_value_is_an_error_not_an_empty_string(prompt_package):
    with pytest.raises(jinja2.UndefinedError):
        PromptSet("demo_prompts").render("greet", items=[])


def test_the_directory_selects_the_version_and_names_it_by_default(prompt_package):
    assert PromptSet("demo_prompts", "v2").render("greet", name="Ada") == "Hi Ada."
    assert PromptSet("demo_prompts", "v2").version == "v2"
    assert PromptSet("demo_prompts", "v1", version="demo-v1").version == "demo-v1"


def test_templates_are_read_once_per_set(prompt_package):
    prompts = PromptSet("demo_prompts", "v2")
    assert prompts.render("greet", name="Ada") == "Hi Ada."
    (prompt_package / "v2" / "greet.jinja").write_text("Changed {{ name }}.")
    assert prompts.render("greet", name="Ada") == "Hi Ada."
    assert PromptSet("demo_prompts", "v2").render("greet", name="Ada") == "Changed Ada."


def test_prompt_directories_lists_versions_without_private_folders(prompt_package):
    assert prompt_directories("demo_prompts") == ["v1", "v2"]


def test_the_packages_keep_their_record_versions():
    from augment.prompts import PROMPT_VERSION as augment_version
    from generate.prompts import PROMPT_VERSION as generate_version
    from judge.templates import prompt_versions

    assert (augment_version, generate_version) == ("music-v2", "generate-v3")
    assert "v1" in prompt_versions()


def test_an_unknown_judge_prompt_version_is_a_config_error():
    from judge.templates import render

    with pytest.raises(ConfigError, match="unknown judge prompt version 'v99'"):
        render("v99", "pairwise_system", reference=None)
