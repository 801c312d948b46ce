"""The web pages in a real browser: headless Chromium, driven through chromedriver by selenium.

A visitor searches, opens a dataset, follows its schema, pages through the
results of a tag, and meets a hostile record; the pages' own style sheet
applies under their Content-Security-Policy and nothing else is loaded or
run. The AppView is the real one (uvicorn on loopback) over a SQLite store
filled through the ingestion write path. Chromium and chromedriver are
Debian's packages (``scripts/setup.sh`` installs them): the browser
downloads of test tools do not work offline.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil

import libipld
import pytest

from atdata_core.plugins import ENTRY_NSID, SCHEMA_NSID

from atdata_index_appview.api import create_app, serve_in_thread
from atdata_index_appview.ingest import CommitBatch, RecordOp
from atdata_index_appview.store import open_store

ALICE = "did:plc:browseralice00000000000000"
MALLORY = "did:plc:browsermallory0000000000000"
NDARRAY = "https://alt.science/schemas/atdata-ndarray-bytes/1.0.0#/$defs/ndarray"
BULK = 45  # datasets tagged "bulk": three pages of 20
_revs = itertools.count(1)


def schema(version, properties, required, created):
    return {
        "$type": SCHEMA_NSID, "name": "com.example.digits", "version": version, "schemaType": "jsonSchema",
        "description": "Handwritten digits.",
        "schema": {"$type": "science.alt.dataset.schema#jsonSchemaFormat",
                   "$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                   "properties": properties, "required": required},
        "createdAt": created,
    }


def entry(name, created, url, **extra):
    return {"$type": ENTRY_NSID, "name": name, "schemaRef": f"at://{ALICE}/{SCHEMA_NSID}/com.example.digits:1.1.0",
            "storage": {"$type": "science.alt.dataset.storageHttp",
                        "shards": [{"url": url, "checksum": {"algorithm": "sha256", "digest": "ab" * 32}}]},
            "createdAt": created, **extra}


def apply(store, did, ops, seq):
    """Index ``ops`` (collection, rkey, record) of ``did`` as one firehose commit, as ingestion hands it over."""
    built = []
    for collection, rkey, record in ops:
        raw = libipld.encode_dag_cbor(record)
        cid = libipld.encode_multibase("b", bytes([1, 0x71, 0x12, 0x20]) + hashlib.sha256(raw).digest())
        built.append(RecordOp(action="create", uri=f"at://{did}/{collection}/{rkey}", cid=cid, record=record, raw=raw))
    store.apply(CommitBatch(source="https://pds.test", seq=seq, did=did, rev=f"3l{next(_revs):011d}", ops=tuple(built)))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The AppView on loopback: alice's schema in two versions, her mnist and 45 bulk datasets, one hostile dataset."""
    image = {"$ref": NDARRAY, "dtype": "uint8", "shape": [28, 28]}
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('browser') / 'appview.db'}")
    apply(store, ALICE, [
        (SCHEMA_NSID, "com.example.digits:1.0.0", schema(
            "1.0.0", {"image": image, "label": {"type": "integer"}}, ["image", "label"], "2025-01-01T00:00:00Z")),
        (SCHEMA_NSID, "com.example.digits:1.1.0", schema(
            "1.1.0", {"image": image, "label": {"type": "integer"}, "caption": {"type": "string"}},
            ["image", "label"], "2025-01-02T00:00:00Z")),
        (ENTRY_NSID, "3kmnistaaaa2a", entry(
            "mnist-train", "2025-02-01T00:00:00Z", "https://data.example.com/mnist-000000.tar",
            description="Handwritten digits from the MNIST training split.", tags=["vision", "digits"],
            size={"samples": 60000, "bytes": 47_185_920, "shards": 1})),
    ], seq=1)
    apply(store, ALICE, [
        (ENTRY_NSID, f"3kbulk{i:05d}2a", entry(f"bulk-{i:02d}", f"2025-03-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
                                              f"https://data.example.com/bulk-{i:02d}.tar", tags=["bulk"]))
        for i in range(BULK)
    ], seq=2)
    apply(store, MALLORY, [
        (ENTRY_NSID, "3khostileaa2a", entry(
            "<script>alert('name')</script>", "2025-02-05T00:00:00Z", "javascript:alert('shard')",
            description="<img src=x onerror=alert('description')>")),
    ], seq=3)
    store.set_handle(ALICE, "alice.test")
    store.set_handle(MALLORY, "mallory.test")
    try:
        with serve_in_thread(create_app(store)) as server:
            yield server.url
    finally:
        store.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium through the system chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("these tests need Chromium and its driver: apt-get install chromium chromium-driver "
                    "(scripts/setup.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1400", "--no-first-run", "--disable-extensions",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def follow(driver, action):
    """Do ``action`` (a click, a submit) and wait until the next page has loaded."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = css(driver, "html")[0]
    action()
    WebDriverWait(driver, 30).until(expected_conditions.staleness_of(old))
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")


def link(driver, text):
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.LINK_TEXT, text)
    assert found, f"no link {text!r} on {driver.current_url}"
    return found[0]


def result_names(driver):
    return [element.text for element in css(driver, "ol.results h3 a")]


def no_alert(driver):
    from selenium.common.exceptions import NoAlertPresentException

    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    text = alert.text
    alert.dismiss()
    raise AssertionError(f"a record's text ran as script: alert({text!r})")


def test_search_open_a_dataset_and_follow_its_schema(site, browser, tmp_path):
    browser.get(site + "/")
    assert browser.find_element("css selector", "h1").text == "Datasets"
    box = css(browser, "form.search input[name=q]")[0]
    box.send_keys("mnist")
    follow(browser, box.submit)
    assert "q=mnist" in browser.current_url
    assert result_names(browser) == ["mnist-train"]

    follow(browser, link(browser, "mnist-train").click)
    assert browser.current_url == f"{site}/dataset/{ALICE}/3kmnistaaaa2a"
    assert css(browser, "h1")[0].text == "mnist-train"
    assert css(browser, "#load-line")[0].text == 'atdata_core.load("@alice.test/mnist-train")'
    rows = [[cell.text for cell in row.find_elements("css selector", "td")] for row in css(browser, "table.fields tbody tr")]
    assert rows[0][:4] == ["image", "NDArray", "uint8", "(28, 28)"]
    assert [row[0] for row in rows] == ["image", "label", "caption"]
    shard = link(browser, "https://data.example.com/mnist-000000.tar")
    assert shard.get_attribute("href") == "https://data.example.com/mnist-000000.tar"
    shot = tmp_path / "dataset.png"
    assert browser.save_screenshot(str(shot))
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000

    follow(browser, link(browser, "com.example.digits 1.1.0").click)
    assert browser.current_url == f"{site}/schema/{ALICE}/com.example.digits:1.1.0"
    assert css(browser, "h1")[0].text == "com.example.digits 1.1.0"
    versions = css(browser, "ol.versions > li")
    assert [v.find_element("css selector", ".name").text for v in versions] == ["1.1.0", "1.0.0"]
    assert "current" in versions[0].get_attribute("class")
    added = css(browser, "ol.versions .diff li.added")
    assert [item.text for item in added] == ["+ADDEDcaption: str | None, optional"], [item.text for item in added]
    follow(browser, link(browser, "1.0.0").click)
    assert css(browser, "h1")[0].text == "com.example.digits 1.0.0"
    follow(browser, link(browser, "@alice.test").click)
    assert css(browser, "h1")[0].text == "@alice.test"


def test_page_through_the_results_of_a_tag(site, browser, tmp_path):
    browser.get(site + "/")
    tags = css(browser, "form.search input[name=tag]")[0]
    tags.send_keys("bulk")
    follow(browser, tags.submit)
    seen = []
    pages = 0
    while True:
        pages += 1
        names = result_names(browser)
        assert names and all(name.startswith("bulk-") for name in names)
        assert [f.text for f in css(browser, ".filter")] == ["tag: bulk×"]
        seen.extend(names)
        if pages == 2:
            assert "Page 2" in css(browser, "#result-summary")[0].text
            browser.save_screenshot(str(tmp_path / "page-2.png"))
        following = [a for a in css(browser, "nav.pager a") if a.text == "Next page →"]
        if not following:
            break
        follow(browser, following[0].click)
    assert pages == 3
    assert len(seen) == len(set(seen)) == BULK
    assert len(result_names(browser)) == BULK - 40  # the last page holds the rest
    follow(browser, link(browser, "← First page").click)
    assert result_names(browser) == seen[:20]
    page_two = (tmp_path / "page-2.png").read_bytes()
    assert page_two.startswith(b"\x89PNG") and len(page_two) > 10_000


def test_a_hostile_record_is_text_in_the_browser(site, browser):
    browser.get(f"{site}/dataset/{MALLORY}/3khostileaa2a")
    assert no_alert(browser)
    assert css(browser, "h1")[0].text == "<script>alert('name')</script>"
    assert "<img src=x onerror=alert('description')>" in css(browser, "p.description")[0].text
    assert css(browser, "a[href^='javascript']") == [] and css(browser, "img") == []
    assert "javascript:alert('shard')" in css(browser, "table.shards")[0].text
    browser.get(site + "/?q=alert")
    assert no_alert(browser)
    assert result_names(browser) == ["<script>alert('name')</script>"]


def test_the_pages_style_applies_and_nothing_else_loads(site, browser):
    browser.get_log("browser")  # drop what earlier pages logged
    for path in ("/", f"/dataset/{ALICE}/3kmnistaaaa2a", f"/schema/{ALICE}/com.example.digits:1.0.0", "/account/alice.test",
                 "/dataset/nobody.test/3kmnistaaaa2a"):
        browser.get(site + path)
        # the inline style sheet is allowed by its hash: the page is laid out by it
        assert css(browser, "header.site")[0].value_of_css_property("border-bottom-style") == "solid"
        assert css(browser, "main")[0].value_of_css_property("max-width") != "none"
        resources = browser.execute_script(
            "return performance.getEntriesByType('resource').map(function (e) { return e.name; })")
        assert resources == [], resources
    problems = [entry["message"] for entry in browser.get_log("browser")
                if "Content Security Policy" in entry["message"] or "Refused" in entry["message"]]
    assert problems == []
    assert css(browser, "h1")[0].text == "No such dataset"
