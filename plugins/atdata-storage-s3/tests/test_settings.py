"""The [s3] section, read the way atdata reads every plugin's settings."""

from __future__ import annotations

import subprocess
import sys

import pytest

from atdata_core.errors import ConfigError
from atdata_core.plugins import Config, plugin_problems, settings_from_config, storage_backend
from atdata_storage_s3.settings import BucketSettings, S3Settings, normalize_endpoint


def read(data: dict) -> S3Settings:
    return settings_from_config(S3Settings, Config(data), "s3")


def test_defaults():
    settings = read({})
    assert settings.endpoint is None and settings.region is None and settings.profile is None
    assert settings.part_size == 16 * 1024 * 1024
    assert settings.for_bucket("any") == BucketSettings(addressing_style="auto")


def test_a_bucket_table_overrides_what_it_sets_and_inherits_the_rest():
    settings = read({"s3": {"endpoint": "https://minio.example.com", "profile": "work", "region": "eu-west-1",
                            "buckets": {"logs": {"region": "eu-west-2"}}}})
    assert settings.for_bucket("logs") == BucketSettings("https://minio.example.com", "eu-west-2", "work", "auto")


def test_a_bucket_on_another_endpoint_inherits_no_profile_or_region():
    """Credentials for one service are never sent to another."""
    settings = read({"s3": {"endpoint": "https://minio.example.com", "profile": "work", "region": "eu-west-1",
                            "buckets": {"shared": {"endpoint": "https://storage.example.org"}}}})
    assert settings.for_bucket("shared") == BucketSettings("https://storage.example.org", None, None, "auto")


def test_environment_values_are_converted(s3_config, monkeypatch):
    monkeypatch.setenv("ATDATA_S3_MAX_CONCURRENCY", "8")
    monkeypatch.setenv("ATDATA_S3_PROFILE", "work")
    s3_config()
    settings = storage_backend("s3://bucket/x.tar").settings
    assert settings.max_concurrency == 8
    assert settings.profile == "work"
    assert settings.part_size == 5 * 1024 * 1024  # from the configuration file


@pytest.mark.parametrize(
    "section, message",
    [
        ({"part_size": 1024}, "part_size must be between 5242880"),
        ({"part_size": "big"}, "s3.part_size should be an integer"),
        ({"endpoint": "https://key:secret@minio.example.com"}, "user name or password"),
        ({"endpoint": "minio.example.com"}, "http:// or https://"),
        ({"region": "EU West"}, "region must look like"),
        ({"addressing_style": "sideways"}, "addressing_style must be one of"),
        ({"bucket": {}}, r"unknown setting s3.bucket"),
        ({"buckets": {"b": {"endpont": "https://x.example"}}}, r"unknown setting buckets.b.endpont"),
        ({"buckets": {"b": {"endpoint": "ftp://x.example"}}}, r"buckets.b: .*http:// or https://"),
        ({"buckets": {"b": "https://x.example"}}, r"buckets.b must be a table"),
    ],
)
def test_bad_settings_name_the_key(section, message):
    with pytest.raises(ConfigError, match=message):
        read({"s3": section})


def test_a_bad_setting_is_reported_when_s3_is_used_and_by_atdata_plugins(s3_config):
    s3_config("max_concurrency = 0\n")
    with pytest.raises(ConfigError, match="atdata.toml: invalid \\[s3\\] setting: max_concurrency must be between"):
        storage_backend("s3://bucket/x.tar")
    assert any("max_concurrency" in problem for problem in plugin_problems())


def test_endpoints_have_one_spelling():
    assert normalize_endpoint("http://LOCALHOST:80") == "http://localhost"
    assert normalize_endpoint("https://[::1]:9000/") == "https://[::1]:9000"
    assert normalize_endpoint("https://10.0.0.1:443") == "https://10.0.0.1"


def test_discovery_does_not_import_boto3():
    probe = (
        "import sys\n"
        "from atdata_core.plugins import plugin_report\n"
        "assert any(i.name == 's3' and i.status == 'loaded' for i in plugin_report())\n"
        "print('boto3' in sys.modules, 'botocore' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
