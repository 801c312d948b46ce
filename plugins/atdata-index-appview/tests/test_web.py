"""The web pages over HTTP: what each page shows, hostile records, the 404 and 400 pages, ``atdata appview serve``.

The pages are served by uvicorn on loopback over a real SQLite store filled
through the ingestion write path (``store.apply`` of commits), as in
production. The browser tests are in ``test_web_browser.py``.
"""

from __future__ import annotations

import ast
import hashlib
import html
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser
from urllib.parse import quote

import httpx
import libipld
import pytest

import atdata_core
from atdata_core.plugins import ENTRY_NSID, LABEL_NSID, LENS_NSID, SCHEMA_NSID

from atdata_index_appview.api import create_app, serve_in_thread
from atdata_index_appview.ingest import CommitBatch, RecordOp
from atdata_index_appview.provider import AppViewIndex
from atdata_index_appview.settings import AppViewSettings
from atdata_index_appview.store import open_store

ALICE = "did:plc:webalice000000000000000000"
BOB = "did:plc:webbob00000000000000000000"
MALLORY = "did:plc:webmallory0000000000000000"
NDARRAY = "https://alt.science/schemas/atdata-ndarray-bytes/1.0.0#/$defs/ndarray"
SCHEMA_V1 = f"at://{ALICE}/{SCHEMA_NSID}/com.example.digits:1.0.0"
SCHEMA_V11 = f"at://{ALICE}/{SCHEMA_NSID}/com.example.digits:1.1.0"
SCHEMA_V2 = f"at://{ALICE}/{SCHEMA_NSID}/com.example.digits:2.0.0"
MNIST = f"at://{ALICE}/{ENTRY_NSID}/3kmnistaaaa2a"
HOSTILE = f"at://{MALLORY}/{ENTRY_NSID}/3khostileaa2a"
AUDIO = f"at://{ALICE}/{SCHEMA_NSID}/com.example.audio:1.0.0"


def image(dtype="uint8", shape=(28, 28)):
    return {"$ref": NDARRAY, "dtype": dtype, "shape": list(shape)}


def schema(version, properties, required, created, description=None):
    record = {
        "$type": SCHEMA_NSID, "name": "com.example.digits", "version": version, "schemaType": "jsonSchema",
        "schema": {"$type": "science.alt.dataset.schema#jsonSchemaFormat",
                   "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                   "properties": properties, "required": required},
        "createdAt": created,
    }
    if description:
        record["description"] = description
    return record


def http_storage(*urls):
    return {"$type": "science.alt.dataset.storageHttp",
            "shards": [{"url": url, "checksum": {"algorithm": "sha256", "digest": f"{i:02x}" * 32}}
                       for i, url in enumerate(urls)]}


def entry(name, created, *, schema_ref=SCHEMA_V11, storage=None, **extra):
    return {"$type": ENTRY_NSID, "name": name, "schemaRef": schema_ref,
            "storage": storage or http_storage(f"https://data.example.com/{name}-000000.tar"),
            "createdAt": created, **extra}


_revs = itertools.count(1)


def apply(store, did, ops, seq):
    """Index ``ops`` (collection, rkey, record) of ``did`` as one firehose commit, as ingestion hands it over."""
    built = []
    for collection, rkey, record in ops:
        raw = libipld.encode_dag_cbor(record)
        cid = libipld.encode_multibase("b", bytes([1, 0x71, 0x12, 0x20]) + hashlib.sha256(raw).digest())
        built.append(RecordOp(action="create", uri=f"at://{did}/{collection}/{rkey}", cid=cid, record=record, raw=raw))
    store.apply(CommitBatch(source="https://pds.test", seq=seq, did=did, rev=f"3l{next(_revs):011d}", ops=tuple(built)))


def fill(store):
    """Alice's digits schema in three versions, her datasets, a label and a lens; bob's dataset; mallory's hostile records."""
    apply(store, ALICE, [
        (SCHEMA_NSID, "com.example.digits:1.0.0", schema(
            "1.0.0", {"image": image(), "label": {"type": "integer"}}, ["image", "label"], "2025-01-01T00:00:00Z")),
        (SCHEMA_NSID, "com.example.digits:1.1.0", schema(
            "1.1.0", {"image": image(), "label": {"type": "integer"}, "caption": {"type": "string"}},
            ["image", "label"], "2025-01-02T00:00:00Z", description="Handwritten digits, 28x28 greyscale.")),
        (SCHEMA_NSID, "com.example.digits:2.0.0", schema(
            "2.0.0", {"image": image("float32", (None, 28, 28)), "label": {"type": "string"},
                      "writer": {"type": "string"}}, ["image", "label", "writer"], "2025-01-03T00:00:00Z")),
        (SCHEMA_NSID, "com.example.audio:1.0.0", {
            **schema("1.0.0", {"wave": image("float32", (None,))}, ["wave"], "2025-01-04T00:00:00Z"),
            "name": "com.example.audio"}),
        (ENTRY_NSID, "3kmnistaaaa2a", entry(
            "mnist-train", "2025-02-01T00:00:00Z", tags=["vision", "digits"], license="CC-BY-4.0",
            description="Handwritten digits from the MNIST training split.",
            size={"samples": 60000, "bytes": 47_185_920, "shards": 2},
            storage=http_storage("https://data.example.com/mnist-000000.tar", "https://data.example.com/mnist-000001.tar"))),
        (ENTRY_NSID, "3kmnisttest2a", entry(
            "mnist-test", "2025-02-02T00:00:00Z", tags=["vision"], schema_ref=SCHEMA_V1,
            storage={"$type": "science.alt.dataset.storageS3", "bucket": "digits", "region": "eu-west-1",
                     "shards": [{"key": "mnist/test-000000.tar", "checksum": {"algorithm": "sha256", "digest": "ef" * 32}}]})),
        (ENTRY_NSID, "3kmnistblob2a", entry(
            "mnist-blobs", "2025-02-03T00:00:00Z", tags=["vision"],
            storage={"$type": "science.alt.dataset.storageBlobs", "blobs": [
                {"blob": {"$type": "blob", "ref": {"$link": "bafkreie7q3iidccmpvszul7kudcvvuavuo7u6gzlbobczuk5nqk3b4akba"},
                          "mimeType": "application/x-tar", "size": 3 * 1024 * 1024},
                 "checksum": {"algorithm": "sha256", "digest": "12" * 32}}]})),
        (LABEL_NSID, "3klabelaaaa2a", {"$type": LABEL_NSID, "name": "stable", "version": "1.0.0", "datasetUri": MNIST,
                                       "createdAt": "2025-03-01T00:00:00Z"}),
        (LENS_NSID, "3klensaaaaa2a", {
            "$type": LENS_NSID, "name": "digits to waveforms", "sourceSchema": SCHEMA_V11,
            "targetSchema": AUDIO,
            "getterCode": {"repository": "https://github.com/alice/lenses", "commit": "a" * 40, "path": "lenses/digits.py:get"},
            "putterCode": {"repository": "https://github.com/alice/lenses", "commit": "a" * 40, "path": "lenses/digits.py:put"},
            "createdAt": "2025-03-02T00:00:00Z"}),
    ], seq=1)
    apply(store, BOB, [
        (ENTRY_NSID, "3kbobdigits2a", entry("bob's digits", "2025-02-04T00:00:00Z", tags=["vision", "digits", "pen, paper"],
                                            description="More digits, written by Bob.")),
    ], seq=2)
    apply(store, MALLORY, [
        (ENTRY_NSID, "3khostileaa2a", entry(
            "<script>alert('name')</script>", "2025-02-05T00:00:00Z",
            description="<img src=x onerror=alert('description')> digits",
            tags=['"><script>alert(1)</script>', "ok-tag"],
            license={"not": "a string"},
            schema_ref="javascript:alert('schema')",
            storage=http_storage("javascript:alert('shard')", "data:text/html,<script>alert(1)</script>",
                                 " https://spaced.example.com/x.tar", "https://fine.example.com/x.tar"))),
        (ENTRY_NSID, "3koddfields2a", {"$type": ENTRY_NSID, "name": 12345, "schemaRef": ["not", "a", "uri"],
                                       "storage": "everywhere", "tags": "not-a-list", "size": {"samples": "many", "bytes": -1},
                                       "description": None, "createdAt": "yesterday"}),
        (ENTRY_NSID, "3kunknownst2a", entry("unknown-storage", "2025-02-06T00:00:00Z", schema_ref=AUDIO,
                                            storage={"$type": "com.example.storageTape", "reels": 3})),
        (LENS_NSID, "3kevillensa2a", {
            "$type": LENS_NSID, "name": "evil lens", "sourceSchema": SCHEMA_V11, "targetSchema": SCHEMA_V2,
            "getterCode": {"repository": "javascript:alert('repo')", "commit": "b" * 40, "path": "x.py:get"},
            "putterCode": {"repository": "javascript:alert('repo')", "commit": "b" * 40, "path": "x.py:put"},
            "createdAt": "2025-03-03T00:00:00Z"}),
        (SCHEMA_NSID, "com.example.broken:1.0.0", {
            "$type": SCHEMA_NSID, "name": "com.example.broken", "version": "1.0.0", "schemaType": "jsonSchema",
            "schema": {"$type": "science.alt.dataset.schema#jsonSchemaFormat", "type": "object", "properties": "nope"},
            "createdAt": "2025-01-05T00:00:00Z"}),
    ], seq=3)
    store.set_handle(ALICE, "alice.test")
    store.set_handle(BOB, "bob.test")
    store.set_handle(MALLORY, "mallory.test")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The AppView (pages and API) on loopback over a filled SQLite store; an HTTP client of it."""
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('web') / 'appview.db'}")
    fill(store)
    try:
        with serve_in_thread(create_app(store, service_did="did:web:appview.test")) as server, \
                httpx.Client(base_url=server.url, timeout=30) as client:
            yield client
    finally:
        store.close()


#: Elements whose text a browser shows apart from what surrounds them (blocks, table cells, the spans of a row of facts).
_SEPARATE = {"div", "p", "li", "td", "th", "tr", "h1", "h2", "h3", "ul", "ol", "nav", "pre", "summary", "span", "br"}


class Page(HTMLParser):
    """A page's text and its parts a visitor meets: links, headings, elements that load things."""

    def __init__(self, source: str):
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []  # (href, text)
        self.loads: list[str] = []  # every src=, and link elements that fetch
        self.scripts = 0
        self.headings: list[str] = []
        self._text: list[str] = []
        self._open_link: list[str] | None = None
        self._href = ""
        self._heading: list[str] | None = None
        self._hidden = 0  # inside <style> or <title>: not text a visitor reads on the page
        self.feed(source)
        self.text = " ".join("".join(self._text).split())

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in _SEPARATE:
            self._text.append(" ")
        if tag == "script":
            self.scripts += 1
        if "src" in attributes:
            self.loads.append(f"{tag} src={attributes['src']}")
        if tag == "link" and attributes.get("href") and attributes["href"] != "data:,":
            self.loads.append(f"link href={attributes['href']}")
        if tag == "a" and "href" in attributes:
            self._open_link, self._href = [], attributes["href"] or ""
        if tag in ("h1", "h2", "h3"):
            self._heading = []
        if tag in ("style", "title"):
            self._hidden += 1

    def handle_endtag(self, tag):
        if tag in _SEPARATE:
            self._text.append(" ")
        if tag in ("style", "title"):
            self._hidden -= 1
        if tag == "a" and self._open_link is not None:
            self.links.append((self._href, " ".join("".join(self._open_link).split())))
            self._open_link = None
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append(" ".join("".join(self._heading).split()))
            self._heading = None

    def handle_data(self, data):
        if self._hidden:
            return
        self._text.append(data)
        if self._open_link is not None:
            self._open_link.append(data)
        if self._heading is not None:
            self._heading.append(data)

    def link(self, text: str) -> str:
        """The target of the link whose text is ``text``."""
        found = [href for href, label in self.links if label == text]
        assert found, f"no link {text!r} among {[label for _, label in self.links]}"
        return found[0]


def get(client, path, status=200) -> Page:
    response = client.get(path)
    assert response.status_code == status, (path, response.status_code, response.text[:2000])
    assert response.headers["content-type"].startswith("text/html")
    page = Page(response.text)
    assert page.scripts == 0 and page.loads == [], page.loads  # nothing runs, nothing is fetched
    return page


def dataset_path(uri):
    did, _, rkey = uri.removeprefix("at://").split("/")
    return f"/dataset/{did}/{rkey}"


# ---------------------------------------------------------------------------- search


def test_home_lists_the_newest_datasets_and_what_is_indexed(site):
    page = get(site, "/")
    assert page.headings[0] == "Datasets"
    assert "7 datasets, 5 schemas and 2 lenses indexed" in page.text
    names = [heading for heading in page.headings[1:]]
    assert names[:3] == ["unknown-storage", "<script>alert('name')</script>", "bob's digits"]
    assert "mnist-train" in names


def test_search_ranks_by_text_and_filters_by_tag(site):
    page = get(site, "/?q=digits")
    found = page.headings[1:]
    assert set(found) == {"mnist-train", "mnist-test", "mnist-blobs", "bob's digits", "<script>alert('name')</script>"}
    assert found[0] == "bob's digits"  # the word in its name outranks the tag and the description
    page = get(site, "/?q=digits&tag=digits")
    assert page.headings[1:] == ["bob's digits", "mnist-train"]
    assert "tag: digits" in page.text
    # the tag box takes several tags, comma-separated
    assert get(site, "/?tag=vision,+digits").headings[1:] == ["bob's digits", "mnist-train"]
    # a filter's × link drops it and keeps the rest
    assert get(site, page.link("×")).headings[1:] == found
    assert "No dataset matches this search." in get(site, "/?q=zebra").text


def test_a_tag_link_finds_its_tag_commas_and_all(site):
    page = get(site, dataset_path(f"at://{BOB}/{ENTRY_NSID}/3kbobdigits2a"))
    found = get(site, page.link("pen, paper"))
    assert found.headings[1:] == ["bob's digits"]
    assert "tag: pen, paper" in found.text
    # typed in the box, a comma separates tags
    assert get(site, "/?tag=pen,+paper").headings[1:] == []


def test_search_by_author_and_schema(site):
    page = get(site, "/?author=bob.test")
    assert page.headings[1:] == ["bob's digits"]
    page = get(site, "/?schema=" + quote(SCHEMA_V1))
    assert page.headings[1:] == ["mnist-test"]
    assert "schema: com.example.digits 1.0.0" in page.text


def test_search_pages_through_every_match_once(site):
    seen: list[str] = []
    path = "/?limit=3"
    pages = 0
    while path:
        page = get(site, path)
        pages += 1
        seen.extend(page.headings[1:])
        if pages > 1:
            assert f"Page {pages}" in page.text and page.link("← First page") == "/?limit=3"
        path = {label: href for href, label in page.links}.get("Next page →")
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    # a text search pages by rank, and the filters stay in the links
    path, seen = "/?q=digits&tag=vision&limit=2", []
    while path:
        page = get(site, path)
        assert "tag: vision" in page.text
        seen.extend(page.headings[1:])
        path = {label: href for href, label in page.links}.get("Next page →")
    assert seen == [h for h in get(site, "/?q=digits&tag=vision").headings[1:]]
    assert len(seen) == 4


# ---------------------------------------------------------------------------- a dataset


def test_dataset_page_shows_schema_storage_labels_lenses_and_the_load_line(site):
    page = get(site, dataset_path(MNIST))
    assert page.headings[0] == "mnist-train"
    text = page.text
    assert 'atdata_core.load("@alice.test/mnist-train")' in text
    assert "Handwritten digits from the MNIST training split." in text
    assert "60,000 samples" in text and "45.0 MiB size" in text and "2 shards" in text and "HTTP storage" in text
    # the schema's fields, with dtypes and shapes, and a link to the schema
    assert "image NDArray uint8 (28, 28) required" in text
    assert "label int required" in text
    assert "caption str | None optional" in text
    assert page.link("com.example.digits 1.1.0") == f"/schema/{ALICE}/com.example.digits:1.1.0"
    # shards link to their URLs, with checksums
    assert page.link("https://data.example.com/mnist-000001.tar") == "https://data.example.com/mnist-000001.tar"
    assert "sha256:0101010101010101…" in text
    assert "Labels 1 stable 1.0.0" in text
    assert "Lenses 2 Out of this dataset's schema 2" in text  # lenses whose source is its schema
    assert "evil lens by @mallory.test com.example.digits 1.1.0 → com.example.digits 2.0.0" in text
    assert "digits to waveforms by @alice.test com.example.digits 1.1.0 → com.example.audio 1.0.0" in text
    assert page.link("https://github.com/alice/lenses") == "https://github.com/alice/lenses"
    assert page.link("@alice.test") == f"/account/{ALICE}"
    assert page.link("vision") == "/?tags=vision"
    assert "CC-BY-4.0" in text
    # the same page by handle
    assert get(site, "/dataset/alice.test/3kmnistaaaa2a").headings[0] == "mnist-train"


def test_dataset_pages_of_each_storage_kind(site):
    s3 = get(site, dataset_path(f"at://{ALICE}/{ENTRY_NSID}/3kmnisttest2a")).text
    assert "bucket digits, region eu-west-1" in s3 and "s3://digits/mnist/test-000000.tar" in s3
    blobs = get(site, dataset_path(f"at://{ALICE}/{ENTRY_NSID}/3kmnistblob2a")).text
    assert "PDS blobs" in blobs and "bafkreie7q3iidccmpvszul7kudcvvuavuo7u6gzlbobczuk5nqk3b4akba" in blobs
    assert "3.0 MiB size" in blobs and "1 shards" in blobs
    tape = get(site, dataset_path(f"at://{MALLORY}/{ENTRY_NSID}/3kunknownst2a")).text
    assert "com.example.storageTape" in tape and "does not know" in tape


def load_line(page: Page) -> str:
    """The reference in the page's line of Python, read as Python reads the literal."""
    match = re.search(r'atdata_core\.load\(("(?:[^"\\]|\\.)*")\)', page.text)
    assert match, page.text[:2000]
    return ast.literal_eval(match.group(1))


def test_the_load_line_loads_the_very_entry_of_the_page(tmp_path):
    """``@handle/name`` where that reaches this entry, its AT-URI where a newer entry has the name; the core agrees."""
    store = open_store(f"sqlite:///{tmp_path / 'names.db'}")
    try:
        apply(store, ALICE, [
            (SCHEMA_NSID, "com.example.digits:1.1.0", schema(
                "1.1.0", {"image": image(), "label": {"type": "integer"}}, ["image", "label"], "2025-01-02T00:00:00Z")),
            *((ENTRY_NSID, rkey, entry(name, created, storage=http_storage("https://data.example.com/d-000000.tar")))
              for rkey, name, created in (("3kolderaaaa2a", "mnist", "2025-01-01T00:00:00Z"),
                                          ("3knewerbbbb2a", "mnist", "2025-06-01T00:00:00Z"),
                                          ("3kspacedaaa2a", "with space", "2025-06-01T00:00:00Z"),
                                          ("3kquotedaaa2a", 'say"cheese"\\', "2025-06-01T00:00:00Z"))),
        ], seq=1)
        store.set_handle(ALICE, "alice.test")
        with serve_in_thread(create_app(store)) as server, httpx.Client(base_url=server.url) as client:
            index = AppViewIndex(AppViewSettings(url=server.url))
            expected = {"3knewerbbbb2a": "@alice.test/mnist", "3kolderaaaa2a": None, "3kspacedaaa2a": None,
                        "3kquotedaaa2a": '@alice.test/say"cheese"\\'}
            for rkey, short in expected.items():
                uri = f"at://{ALICE}/{ENTRY_NSID}/{rkey}"
                ref = load_line(get(client, f"/dataset/{ALICE}/{rkey}"))
                assert ref == (short or uri)
                assert atdata_core.resolve(ref, index=index).entry_uri == uri
    finally:
        store.close()


# ---------------------------------------------------------------------------- a schema


def test_schema_page_shows_versions_newest_first_and_what_changed(site):
    page = get(site, "/schema/alice.test/com.example.digits:1.1.0")
    assert page.headings[0] == "com.example.digits 1.1.0"
    text = page.text
    assert "Handwritten digits, 28x28 greyscale." in text
    assert "image NDArray uint8 (28, 28) required" in text
    versions = re.findall(r"\b(\d\.\d\.\d) (?:this version )?2025-01-0\d", text)
    assert versions == ["2.0.0", "1.1.0", "1.0.0"]
    assert page.link("2.0.0") == f"/schema/{ALICE}/com.example.digits:2.0.0"
    # 2.0.0 against 1.1.0, then 1.1.0 against 1.0.0
    assert "− removed caption: str | None, optional" in text
    assert "~ changed image: dtype uint8 → float32; shape (28, 28) → (None, 28, 28)" in text
    assert "~ changed label: type int → str" in text
    assert "+ added writer: str, required" in text
    assert "+ added caption: str | None, optional" in text
    assert text.index("added writer") < text.index("added caption")
    # its datasets and lenses
    assert "mnist-train" in page.headings and "mnist-test" not in page.headings
    assert "Out of this schema 2" in text and "Into this schema" not in text
    newest = get(site, "/schema/alice.test/com.example.digits:2.0.0").text
    assert "Into this schema 1 evil lens by @mallory.test" in newest and "Out of this schema" not in newest


def test_a_schema_its_format_cannot_read_says_why(site):
    text = get(site, "/schema/mallory.test/com.example.broken:1.0.0").text
    assert "The fields of this schema cannot be shown" in text


# ---------------------------------------------------------------------------- an account


def test_account_page_lists_datasets_schemas_and_lenses(site):
    page = get(site, "/account/alice.test")
    assert page.headings[0] == "@alice.test"
    assert ALICE in page.text
    assert {"mnist-train", "mnist-test", "mnist-blobs"} <= set(page.headings)
    assert "bob's digits" not in page.headings
    assert page.link("com.example.audio") == f"/schema/{ALICE}/com.example.audio:1.0.0"
    assert "digits to waveforms" in page.text
    assert get(site, f"/account/{ALICE}").headings[0] == "@alice.test"


def test_account_sections_page_by_cursor(site):
    first = get(site, "/account/alice.test?limit=2")
    second = get(site, first.link("More datasets →"))
    names = [h for h in first.headings + second.headings if h.startswith("mnist")]
    assert sorted(names) == ["mnist-blobs", "mnist-test", "mnist-train"]
    assert "More datasets →" not in second.text
    assert second.link("← First datasets") == f"/account/{ALICE}?limit=2"
    schemas = get(site, first.link("More schemas →"))
    assert "com.example.digits" in [label for _, label in schemas.links]


# ---------------------------------------------------------------------------- hostile and odd records


def test_record_text_is_escaped_never_markup(site):
    response = site.get(dataset_path(HOSTILE))
    assert response.status_code == 200
    body = response.text
    assert "<script>" not in body and "<img" not in body
    assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=alert(&#39;description&#39;)&gt;" in body
    page = Page(body)
    assert page.headings[0] == "<script>alert('name')</script>"  # shown as the text it is
    assert page.scripts == 0
    # the hostile tag is a link to a search for it, its text quoted in the URL
    assert page.link('"><script>alert(1)</script>') == "/?tags=" + quote('"><script>alert(1)</script>', safe="")
    # no script may run even if something slipped through: the policy allows none
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_search_text_is_escaped_where_the_page_repeats_it(site):
    hostile = '"><script>alert(1)</script>'
    response = site.get("/", params={"q": hostile, "tag": "<u>under</u>", "author": "alice.test"})
    assert response.status_code == 200
    assert "<script>" not in response.text and "<u>" not in response.text
    page = Page(response.text)
    assert page.scripts == 0
    assert "tag: <u>under</u>" in page.text  # the filter, shown as typed
    box = re.search(r'<input type="search" name="q" value="([^"]*)"', response.text)
    assert box and html.unescape(box.group(1)) == hostile  # the search box holds it as text


def test_only_http_urls_become_links(site):
    for path in (dataset_path(HOSTILE), dataset_path(MNIST), "/account/mallory.test"):
        page = get(site, path)
        for href, _ in page.links:
            assert href.startswith(("/", "https://", "http://")), href
    page = get(site, dataset_path(HOSTILE))
    text = page.text
    assert "javascript:alert('shard')" in text  # shown, as text
    assert "data:text/html,<script>alert(1)</script>" in text
    assert page.link("https://fine.example.com/x.tar") == "https://fine.example.com/x.tar"
    hrefs = [href for href, _ in page.links]
    assert not any("javascript" in href or "spaced.example.com" in href for href in hrefs)
    # the schema reference is not an AT-URI: shown, not linked
    assert "javascript:alert('schema')" in text
    # the lens's code repository is a javascript: URL: shown as text on the account page
    lens_page = get(site, "/account/mallory.test")
    assert "javascript:alert('repo')" in lens_page.text
    assert not any("javascript" in href for href, _ in lens_page.links)


def test_fields_of_the_wrong_type_show_as_missing(site):
    page = get(site, f"/dataset/{MALLORY}/3koddfields2a")
    assert page.headings[0] == "(unnamed dataset)"
    assert "the entry says nothing about where its shards are" in page.text
    assert "– samples" in page.text
    assert f'atdata_core.load("at://{MALLORY}/{ENTRY_NSID}/3koddfields2a")' in page.text
    # and in lists
    assert "(unnamed)" in get(site, "/account/mallory.test").headings


# ---------------------------------------------------------------------------- 404 and 400


@pytest.mark.parametrize("path", [
    f"/dataset/{ALICE}/3knothing0002",
    "/dataset/nobody.test/3kmnistaaaa2a",
    f"/dataset/{ALICE}/not%20a%20key",
    f"/dataset/{ALICE}/" + "k" * 600,
    f"/schema/{ALICE}/com.example.digits:9.9.9",
    f"/schema/{ALICE}/3kmnistaaaa2a",  # an entry's key is no schema
    "/account/nobody.test",
    "/account/did:plc:nobodyatall000000000000000",
    "/account/%3Cscript%3E",
    "/account/did:plc:%3Cscript%3E",
    "/dataset/did:web:/3kmnistaaaa2a",
])
def test_what_the_index_lacks_is_a_404_page(site, path):
    page = get(site, path, status=404)
    assert page.headings[0].startswith("No such")
    assert page.link("Search the datasets") == "/"


@pytest.mark.parametrize("query", [
    "cursor=not-a-cursor",
    "cursor=" + "A" * 13000,
    "q=" + "x" * 1200,
    "q=" + "+".join(f"w{i}" for i in range(40)),
    "tag=" + "t" * 200,
    "tag=" + ",".join(f"t{i}" for i in range(40)),
    "schema=not-an-at-uri",
    "author=not%20a%20handle",
    "cursor=abc&page=two",
    "cursor=abc&page=0",
    "limit=101",
    "limit=ten",
    "q=" + "%00",
])
def test_bad_query_parameters_are_a_400_page(site, query):
    page = get(site, "/?" + query, status=400)
    assert page.headings[0] == "This request cannot be answered"
    assert len(page.text) < 5000


def test_a_400_page_escapes_what_it_quotes(site):
    response = site.get("/?schema=" + quote("<script>alert(1)</script>"))
    assert response.status_code == 400
    assert "<script>" not in response.text


def test_a_cursor_of_a_listing_is_refused_by_search(site):
    listing_cursor = get(site, "/account/alice.test?limit=1").link("More datasets →").split("datasets=")[1]
    get(site, "/?cursor=" + listing_cursor, status=400)
    get(site, "/account/alice.test?datasets=not-a-cursor", status=400)
    get(site, "/account/alice.test?limit=0", status=400)


def test_a_store_that_fails_is_a_500_page_that_gives_nothing_away(tmp_path, caplog):
    store = open_store(f"sqlite:///{tmp_path / 'closing.db'}")
    with serve_in_thread(create_app(store)) as server, httpx.Client(base_url=server.url) as client:
        assert get(client, "/").headings[0] == "Datasets"
        store.close()  # the database is gone from under the service
        page = get(client, "/", status=500)
    assert page.headings[0] == "Something went wrong"
    assert "The AppView failed to answer; the fault is logged." in page.text
    assert "Traceback" not in page.text and "sqlite" not in page.text.lower()
    assert any("the page / failed" in record.getMessage() for record in caplog.records)


def test_unknown_paths_stay_json_404s(site):
    response = site.get("/nothing/here")
    assert response.status_code == 404 and response.json()["error"] == "NotFound"


# ---------------------------------------------------------------------------- the command


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_atdata_appview_serve_serves_the_pages(tmp_path):
    path = tmp_path / "served.db"
    store = open_store(f"sqlite:///{path}")
    try:
        fill(store)
    finally:
        store.close()
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "atdata_core.cli", "appview", "serve", "--store", f"sqlite:///{path}", "--port", str(port),
         "--no-ingest"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                home = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the service did not start"
                time.sleep(0.1)
        assert home.status_code == 200 and "mnist-train" in html.unescape(home.text)
        dataset = httpx.get(f"http://127.0.0.1:{port}{dataset_path(MNIST)}", timeout=5)
        assert 'atdata_core.load("@alice.test/mnist-train")' in html.unescape(dataset.text)
    finally:
        os.kill(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
