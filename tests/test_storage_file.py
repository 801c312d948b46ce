"""File storage, shard routing, and expanding dataset sources into shard URLs."""

from __future__ import annotations

import os
import pathlib

import pytest

from atdata_core.errors import MissingImplementation, StorageError, StorageNotFound
from atdata_core.plugins.conformance import StorageBackendConformance
from atdata_core.storage import expand_braces, expand_source, open_shard, put_shard
from atdata_core.storage.file import FileStorage, local_path


class TestFileStorageWithPaths(StorageBackendConformance):
    check_registry = True

    @pytest.fixture
    def backend(self):
        return FileStorage()

    @pytest.fixture
    def base_url(self, tmp_path):
        return str(tmp_path / "store")


class TestFileStorageWithFileUrls(StorageBackendConformance):
    check_registry = True

    @pytest.fixture
    def backend(self):
        return FileStorage()

    @pytest.fixture
    def base_url(self, tmp_path):
        return (tmp_path / "store with space").as_uri()


def test_put_never_leaves_a_partial_file_under_the_final_name(tmp_path):
    source = tmp_path / "local.tar"
    source.write_bytes(b"x" * 10_000)
    dest = tmp_path / "out" / "data-000000.tar"
    FileStorage().put(str(source), str(dest))
    assert dest.read_bytes() == b"x" * 10_000
    # only the final file remains: the temporary copy was renamed, not left behind
    assert os.listdir(dest.parent) == ["data-000000.tar"]


def test_put_of_a_missing_local_file(tmp_path):
    with pytest.raises(StorageNotFound, match="no such local file"):
        FileStorage().put(str(tmp_path / "absent.tar"), str(tmp_path / "dest.tar"))


def test_file_urls_decode_percent_escapes(tmp_path):
    target = tmp_path / "a b" / "shard 1.tar"
    target.parent.mkdir()
    target.write_bytes(b"hello")
    assert local_path(target.as_uri()) == str(target)
    with open_shard(target.as_uri()) as stream:
        assert stream.read() == b"hello"


def test_file_url_on_another_host_is_refused():
    with pytest.raises(StorageError, match="another host"):
        FileStorage().open("file://fileserver/share/a.tar")


def test_a_directory_is_a_folder_not_an_object(tmp_path):
    with pytest.raises(StorageNotFound, match="is a directory"):
        FileStorage().open(str(tmp_path))
    with pytest.raises(StorageNotFound, match="is a directory"):
        FileStorage().size(str(tmp_path))
    assert FileStorage().exists(str(tmp_path)) is False


def test_list_and_glob_keep_the_form_they_were_given_in(tmp_path, monkeypatch):
    folder = tmp_path / "a set"
    (folder / "sub").mkdir(parents=True)
    for name in ["x.tar", "y.tar", "sub/z.tar"]:
        (folder / name).write_bytes(b"x")
    (tmp_path / "a set2").mkdir()
    (tmp_path / "a set2" / "w.tar").write_bytes(b"w")
    storage = FileStorage()
    assert storage.list(str(folder)) == [str(folder / "sub" / "z.tar"), str(folder / "x.tar"), str(folder / "y.tar")]
    # A file URL as written (a raw space) or percent-encoded: the listing keeps its prefix.
    raw = f"file://{folder}"
    assert storage.glob(f"{raw}/*.tar") == [f"{raw}/x.tar", f"{raw}/y.tar"]
    assert storage.glob(f"{folder.as_uri()}/*/*.tar") == [f"{folder.as_uri()}/sub/z.tar"]
    # A relative pattern lists relative paths.
    monkeypatch.chdir(folder)
    assert storage.glob("*.tar") == ["x.tar", "y.tar"]
    assert storage.list("") == ["sub/z.tar", "x.tar", "y.tar"]
    assert expand_source("{x,y}*.tar") == ["x.tar", "y.tar"]


def test_open_shard_and_put_shard_route_plain_paths(tmp_path):
    source = tmp_path / "src.tar"
    source.write_bytes(b"shard bytes")
    url = put_shard(source, str(tmp_path / "dest" / "a.tar"))
    with open_shard(url) as stream:
        assert stream.read() == b"shard bytes"
    with open_shard(pathlib.Path(url)) as stream:
        assert stream.read() == b"shard bytes"


def test_open_shard_with_an_unknown_scheme_names_what_to_install(monkeypatch):
    # atdata-storage-s3 lives in this repository and may be installed here: deny-listed, it is
    # named all the same (the core alone says "pip install atdata-storage-s3": tests/test_plugins.py).
    from atdata_core.plugins import reset_plugins

    monkeypatch.setenv("ATDATA_PLUGINS_DENY", "atdata-storage-s3,atdata-storage-blob")
    reset_plugins()
    try:
        with pytest.raises(MissingImplementation, match=r"atdata-storage-s3"):
            open_shard("s3://bucket/data-000000.tar")
        with pytest.raises(MissingImplementation, match=r"atdata-storage-blob"):
            open_shard("atblob://did:plc:abc/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
    finally:
        monkeypatch.delenv("ATDATA_PLUGINS_DENY")
        reset_plugins()
    with pytest.raises(MissingImplementation, match=r"gopher://"):
        open_shard("gopher://host/a.tar")


# -- braces ---------------------------------------------------------------


def test_brace_ranges_keep_zero_padding():
    assert expand_braces("data-{000000..000002}.tar") == ["data-000000.tar", "data-000001.tar", "data-000002.tar"]
    assert expand_braces("d-{8..11}.tar") == ["d-8.tar", "d-9.tar", "d-10.tar", "d-11.tar"]
    assert expand_braces("d-{08..11}.tar") == ["d-08.tar", "d-09.tar", "d-10.tar", "d-11.tar"]


def test_brace_lists_several_braces_and_nesting():
    assert expand_braces("{train,test}/x-{0..1}.tar") == ["train/x-0.tar", "train/x-1.tar", "test/x-0.tar", "test/x-1.tar"]
    assert expand_braces("s-{a,b{1,2}}.tar") == ["s-a.tar", "s-b1.tar", "s-b2.tar"]


def test_brace_ranges_descend_and_step():
    assert expand_braces("{3..1}") == ["3", "2", "1"]
    assert expand_braces("{0..10..5}") == ["0", "5", "10"]


def test_braces_without_a_range_or_list_stay_literal():
    assert expand_braces("https://host/{id}/a.tar") == ["https://host/{id}/a.tar"]
    assert expand_braces("plain.tar") == ["plain.tar"]


def test_unbalanced_and_huge_braces_are_refused():
    with pytest.raises(StorageError, match="unbalanced"):
        expand_braces("data-{0..3.tar")
    with pytest.raises(StorageError, match="more than"):
        expand_braces("{0..99999999}")


# -- expand_source ----------------------------------------------------------


@pytest.fixture
def shard_dir(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    for name in ["data-000002.tar", "data-000000.tar", "data-000001.tar", "notes.txt"]:
        (folder / name).write_bytes(b"x")
    (folder / "nested").mkdir()
    (folder / "nested" / "data-000009.tar").write_bytes(b"x")
    return folder


def test_source_as_a_folder_lists_its_tars_sorted(shard_dir):
    expected = [str(shard_dir / f"data-00000{i}.tar") for i in range(3)]
    assert expand_source(str(shard_dir)) == expected
    assert expand_source(shard_dir) == expected
    assert expand_source(shard_dir.as_uri()) == [(shard_dir / f"data-00000{i}.tar").as_uri() for i in range(3)]


def test_source_as_a_glob(shard_dir):
    assert expand_source(str(shard_dir / "data-00000[01].tar")) == [
        str(shard_dir / "data-000000.tar"),
        str(shard_dir / "data-000001.tar"),
    ]
    assert expand_source(str(shard_dir / "*" / "*.tar")) == [str(shard_dir / "nested" / "data-000009.tar")]


def test_source_as_a_brace_pattern_is_not_checked_for_existence(shard_dir):
    urls = expand_source(f"{shard_dir}/data-{{000000..000004}}.tar")
    assert urls == [f"{shard_dir}/data-00000{i}.tar" for i in range(5)]


def test_source_as_a_list_of_everything(shard_dir):
    urls = expand_source(
        [
            "https://host/a-{0..1}.tar",
            shard_dir / "nested",
            (str(shard_dir / "data-000000.tar"),),
            f"{shard_dir}/data-00000?.tar",
        ]
    )
    assert urls == [
        "https://host/a-0.tar",
        "https://host/a-1.tar",
        str(shard_dir / "nested" / "data-000009.tar"),
        str(shard_dir / "data-000000.tar"),
        *[str(shard_dir / f"data-00000{i}.tar") for i in range(3)],
    ]


def test_question_mark_in_a_remote_url_is_a_query_not_a_pattern():
    assert expand_source("https://host/a.tar?token=abc") == ["https://host/a.tar?token=abc"]


def test_a_glob_that_matches_nothing_says_so(tmp_path):
    with pytest.raises(StorageNotFound, match=r"no shards match .*\*\.tar"):
        expand_source(str(tmp_path / "*.tar"))
    with pytest.raises(StorageNotFound, match=r"from"):
        expand_source(str(tmp_path / "{a,b}-*.tar"))


def test_a_folder_without_tars_says_so(tmp_path):
    (tmp_path / "readme.txt").write_text("no shards here")
    with pytest.raises(StorageNotFound, match="holds no .tar shards"):
        expand_source(tmp_path)


def test_a_remote_glob_needs_a_listing_backend():
    with pytest.raises(StorageError, match="brace pattern"):
        expand_source("https://host/data-*.tar")


def test_empty_and_wrong_sources_are_refused():
    with pytest.raises(StorageError, match="empty"):
        expand_source([])
    with pytest.raises(StorageError, match="empty"):
        expand_source("")
    with pytest.raises(TypeError, match="not int"):
        expand_source(42)  # type: ignore[arg-type]
