"""Schema versions and record keys (DESIGN D5)."""

from __future__ import annotations

import pytest

from atdata_core.errors import ValidationError
from atdata_core.lexicon import check_format
from atdata_core.records import (
    latest_version,
    parse_schema_rkey,
    parse_version,
    schema_rkey,
    sort_versions,
    version_bump,
)


def test_precedence_follows_semver_not_string_order():
    ordered = [
        "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
        "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.2.0", "1.9.0", "1.10.0", "2.0.0-rc.1", "2.0.0",
    ]
    assert sort_versions(reversed(ordered)) == ordered
    assert parse_version("1.0.0+build.1") == parse_version("1.0.0+build.2")


def test_latest_is_the_highest_semver():
    assert latest_version(["1.9.0", "1.10.0", "1.2.0"]) == "1.10.0"
    assert latest_version(["2.0.0-rc.1", "2.0.0", "1.5.0"]) == "2.0.0"
    assert latest_version(["2.0.0-rc.1", "1.5.0"]) == "2.0.0-rc.1"
    assert latest_version(["2.0.0-rc.1", "1.5.0"], include_prereleases=False) == "1.5.0"
    assert latest_version(["v3", "latest", "1.0.0"]) == "1.0.0"
    assert latest_version([]) is None


@pytest.mark.parametrize("text", ["1.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0-01", "", "1.0.0 "])
def test_non_semver_is_refused(text):
    with pytest.raises(ValidationError) as caught:
        parse_version(text)
    assert caught.value.rule == "semver"


@pytest.mark.parametrize(
    ("old", "new", "bump"),
    [("1.2.3", "2.0.0", "major"), ("1.2.3", "1.3.0", "minor"), ("1.2.3", "1.2.4", "patch"),
     ("1.0.0-rc.1", "1.0.0-rc.2", "prerelease"), ("1.2.3", "1.2.3", None), ("1.2.3", "1.2.2", None)],
)
def test_version_bump(old, new, bump):
    assert version_bump(old, new) == bump


def test_schema_rkey():
    rkey = schema_rkey("com.example.image", "1.2.0")
    assert rkey == "com.example.image:1.2.0"
    assert check_format("record-key", rkey) is None
    assert schema_rkey("com.example.image", "2.0.0-rc.1") == "com.example.image:2.0.0-rc.1"
    assert parse_schema_rkey(rkey) == ("com.example.image", "1.2.0")
    assert parse_schema_rkey("com.example.image@1.2.0") == ("com.example.image", "1.2.0")
    assert parse_schema_rkey("3lbsbdqxmyk2a") is None


@pytest.mark.parametrize(
    ("schema_id", "version", "rule"),
    [
        ("com.example.image", "1.2.0+build.5", "semver:build"),
        ("com.example.image", "1.2", "semver"),
        ("image", "1.0.0", "format:nsid"),
        ("com.example.my image", "1.0.0", "format:nsid"),
        ("com.example@image", "1.0.0", "format:nsid"),
    ],
)
def test_schema_rkey_refuses(schema_id, version, rule):
    with pytest.raises(ValidationError) as caught:
        schema_rkey(schema_id, version)
    assert caught.value.rule == rule
