"""The documentation covers the code: every hook, command and setting, and the tutorial runs.

The CLI, configuration and lexicon pages are generated at build time by
``docs/_generated.py`` (a MkDocs hook); these tests read the same generated
sources, so what they check is what the site shows. The build itself runs in
strict mode here too, and a broken anchor is shown to fail it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

pytest.importorskip("mkdocs", reason="the docs tools come with the docs extra: pip install -e '.[docs]'")


def _load_generator():
    spec = importlib.util.spec_from_file_location("atdata_docs_generated", DOCS / "_generated.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def isolated(module):
    """The environment the docs build sees (no ATDATA_* variable, empty user folders), for the block only:
    the whole environment is restored on exit, so nothing leaks into other tests' fixtures."""
    saved = dict(os.environ)
    try:
        module._isolate_from_the_user()
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        from atdata_core.plugins import reset_plugins

        reset_plugins()


@pytest.fixture(scope="module")
def generated():
    """The generator, and its pages built as the docs build builds them."""
    module = _load_generator()
    with isolated(module):
        pages = module.generated_pages()
    return module, pages


def page_sources(generated) -> dict[str, str]:
    """Every page's Markdown source: the files in docs/ and the generated ones."""
    _, pages = generated
    sources = {str(p.relative_to(DOCS)): p.read_text(encoding="utf-8") for p in DOCS.rglob("*.md")}
    sources.update(pages)
    return sources


# ---------------------------------------------------------------------------- hooks


def hookspecs() -> list[str]:
    from atdata_core.plugins import hookspecs as module

    return [name for name, fn in inspect.getmembers(module, inspect.isfunction)
            if name.startswith("atdata_") and hasattr(fn, "atdata_spec")]


def test_every_hookspec_is_documented_in_the_plugin_guide():
    guide = (DOCS / "plugins.md").read_text(encoding="utf-8")
    reference = guide.split("### Hook reference", 1)[1].split("\n## ", 1)[0]
    names = hookspecs()
    assert len(names) >= 6
    for name in names:
        assert re.search(rf"^\| `{name}\(", reference, re.MULTILINE), f"{name} has no row in the hook reference"
        assert f"`{name}(" in guide.split("### Hook reference", 1)[0], f"{name} is not introduced before the reference"


# ---------------------------------------------------------------------------- commands


def command_paths(module) -> list[tuple[str, list[str]]]:
    """``(page, ["atdata", command, subcommand...])`` for every command and subcommand."""
    import click

    from atdata_core.cli import cli

    root = click.Context(cli, info_name="atdata", **cli.context_settings)
    found = []
    with isolated(module):
        for name, command, _ in module.cli_commands():
            for path, _, _ in module._walk(command, ["atdata", name], root):
                found.append((f"cli/{name}.md", path))
    return found


def test_every_command_and_subcommand_has_its_help_on_a_page(generated):
    module, pages = generated
    paths = command_paths(module)
    assert len(paths) > 20
    for page, path in paths:
        assert page in pages, f"no page for {' '.join(path[:2])}"
        usage = f"Usage: {' '.join(path)} "
        assert usage in pages[page] or f"Usage: {' '.join(path)}\n" in pages[page], f"{' '.join(path)} is not on {page}"
    index = pages["cli/index.md"]
    for name in {path[1] for _, path in paths}:
        assert f"[`atdata {name}`]({name}.md)" in index


def test_commands_of_installed_plugins_are_documented(generated):
    module, pages = generated
    from atdata_core.plugins import cli_commands

    with isolated(module):
        names = [command.name for command in cli_commands()]
    assert "appview" in names  # atdata-index-appview is installed in the test environment
    for name in names:
        assert f"cli/{name}.md" in pages
        assert "Added by the `" in pages[f"cli/{name}.md"]


def test_the_built_in_command_table_is_all_documented(generated):
    _, pages = generated
    from atdata_core.cli import _Group

    for name in _Group._builtin:
        assert f"cli/{name}.md" in pages and f"# atdata {name}" in pages[f"cli/{name}.md"]


# ---------------------------------------------------------------------------- configuration


def test_every_configuration_key_is_documented_with_its_variable(generated):
    module, pages = generated
    from atdata_core.config import CORE_KEYS

    page = pages["reference/configuration.md"]
    sections = {s: page.split(f"## `[{s}]`", 1)[1].split("\n## ", 1)[0] for s in CORE_KEYS}
    for section, keys in CORE_KEYS.items():
        for key in keys:
            assert re.search(rf"^\| `{key}` \|", sections[section], re.MULTILINE), f"[{section}] {key} missing"
    with isolated(module):
        keys, problems = module.config_keys(), module.configuration_problems()
    for entry in keys:
        section = page.split(f"## `[{entry['section']}]`", 1)[1].split("\n## ", 1)[0]
        row = next(line for line in section.splitlines() if line.startswith(f"| `{entry['key']}` |"))
        assert entry["doc"] and entry["doc"].replace("|", "\\|") in row
        if "files only" not in row:
            assert f"`{module.env_name(entry['section'], entry['key'])}`" in row
    assert problems == []


def test_settings_of_installed_plugins_are_in_the_reference(generated):
    module, pages = generated
    import attrs

    from atdata_core.plugins import get_registry

    page = pages["reference/configuration.md"]
    with isolated(module):
        with_settings = [spec for spec in get_registry().all_specs() if spec.settings is not None]
    assert {spec.section or spec.name for spec in with_settings} >= {"s3", "blob", "appview"}
    for spec in with_settings:
        section = page.split(f"## `[{spec.section or spec.name}]`", 1)[1].split("\n## ", 1)[0]
        for field in attrs.fields(spec.settings):
            assert f"| `{field.name}` |" in section


def test_a_key_without_a_description_is_a_problem(generated):
    module, _ = generated
    module.CORE_KEY_DOCS.pop("http.timeout")
    try:
        with isolated(module):
            problems = module.configuration_problems()
        assert "configuration key http.timeout has no description in docs/_generated.py" in problems
    finally:
        module.CORE_KEY_DOCS["http.timeout"] = "restored"


def test_every_environment_variable_the_code_reads_is_documented(generated):
    module, pages = generated
    page = pages["reference/configuration.md"]
    names = module.environment_variables_in_code()
    assert {"ATDATA_CONFIG", "ATDATA_SANDBOX_STATE", "ATDATA_APPVIEW_URL"} <= names
    for name in names:
        assert f"`{name}`" in page, name


# ---------------------------------------------------------------------------- lexicons


def test_every_lexicon_and_definition_is_in_the_reference(generated):
    module, pages = generated
    page = pages["reference/lexicons.md"]
    documents = module.lexicon_documents()
    assert len(documents) >= len(list((ROOT / "lexicons").rglob("*.json")))
    for _, doc in documents:
        assert f"## {doc['id']} {{#" in page
        for name in doc.get("defs", {}):
            if name != "main":
                assert f"### `{doc['id']}#{name}`" in page


# ---------------------------------------------------------------------------- the site


def test_the_site_builds_strictly(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    assert (site / "cli" / "publish" / "index.html").is_file()
    assert (site / "reference" / "configuration" / "index.html").is_file()
    import atdata_core

    api = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    for name in atdata_core.__all__:
        if name not in ("__version__", "errors"):
            assert f'id="atdata_core.{name}"' in api, f"atdata_core.{name} is not in the API reference"
    assert 'id="atdata_core.errors.ChecksumError"' in api
    # Offline: no page loads a font, script or style sheet from elsewhere.
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "fonts.googleapis.com" not in text and "fonts.gstatic.com" not in text, page
        assert not re.search(r'<(script|link)[^>]*(src|href)="(https?:)?//', text), page


def test_a_broken_anchor_fails_the_build(tmp_path):
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the other page](other.md#no-such-heading).\n")
    (docs / "other.md").write_text("# Other\n\n## A heading\n")
    small = {"site_name": "anchors", "docs_dir": "docs", "strict": True, "validation": config["validation"],
             "theme": config["theme"], "markdown_extensions": ["toc", "attr_list"]}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(small))
    # Not --quiet: it hides the warnings strict mode counts, and the build would pass.
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode != 0
    assert "no-such-heading" in done.stderr


# ---------------------------------------------------------------------------- the tutorial


def test_the_tutorial_runs_on_a_local_federation(pds_sandbox, tmp_path):
    """The tutorial's Python snippets, in order, in one process, as the page says (its accounts renamed
    so they cannot meet another test's)."""
    from atdata_core.sandbox import create_account

    code = "\n".join(re.findall(r"```python\n(.*?)```", (DOCS / "tutorial.md").read_text(encoding="utf-8"), re.S))
    alice = f"tut{secrets.token_hex(3)}.test"
    create_account(alice, "alice-password", pds_url=pds_sandbox.pds_url)
    script = tmp_path / "tutorial.py"
    script.write_text(code.replace("alice.test", alice))
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATDATA_")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), ATDATA_SANDBOX_STATE=str(tmp_path / "no-user-sandbox"),
               ATDATA_PLC_URL=pds_sandbox.plc_url, ATDATA_SANDBOX_PDS_URL=pds_sandbox.pds_url,
               # the sandbox's DID documents name its loopback PDS, which records may reach only if allowed
               ATDATA_NETWORK_ALLOW_HOSTS=",".join(urlsplit(url).netloc for url in (pds_sandbox.plc_url,
                                                                                     pds_sandbox.pds_url)))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    out = done.stdout.splitlines()
    assert out[0] == "[('shards/tones-000000.tar', 100), ('shards/tones-000001.tar', 100), ('shards/tones-000002.tar', 100)]"
    assert out[1] == "A4 float32 (8000,)"
    assert out[2].startswith("(32, 8000) [")
    assert re.fullmatch(r"at://did:plc:\w+/science\.alt\.dataset\.schema/test\.alice\.sound:1\.0\.0", out[3])
    assert out[5] == "['tones']"
    assert out[6] == "Sound 300"


def test_links_to_repository_files_outside_the_site_become_their_paths(generated):
    module, _ = generated
    text = ("See [the Ray plugin](../plugins/atdata-ray/README.md#install), [concepts](concepts.md#records), "
            "[nothing](../no/such/file.md) and [the web](https://example.org/x.md).")
    out = module.repository_links(text, "scaling.md", DOCS)
    assert "the Ray plugin (`plugins/atdata-ray/README.md` in the repository)" in out
    assert "[concepts](concepts.md#records)" in out          # a page of the site: mkdocs checks it
    assert "[nothing](../no/such/file.md)" in out            # missing: left for the strict build to refuse
    assert "[the web](https://example.org/x.md)" in out
