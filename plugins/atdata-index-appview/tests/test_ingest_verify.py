"""The checks ingestion makes before it believes a byte: CAR blocks against CIDs, DAG-CBOR
records in their JSON form, commit signatures (low-S), the repository tree, firehose frames."""

from __future__ import annotations

import base64
import hashlib

import libipld
import pytest

from atdata_index_appview.ingest._car import BadBlock, CarError, read_car
from atdata_index_appview.ingest._cbor import CborError, record_json, unsigned_commit
from atdata_index_appview.ingest._crafting import CraftedRepo, Link, Signer, car_bytes, cid_of, encode, frame
from atdata_index_appview.ingest._frames import (
    AccountEvent,
    CommitEvent,
    ErrorFrame,
    FrameError,
    IdentityEvent,
    InfoEvent,
    SyncEvent,
    UnknownEvent,
    decode_frame,
)
from atdata_index_appview.ingest._mst import MstError, lookup, walk
from atdata_index_appview.ingest._signature import SigningKeyError, parse_multikey, signing_key_of

# --- CAR files ----------------------------------------------------------------------


def test_car_blocks_that_match_their_cids_are_read():
    blocks = [(cid_of(data), data) for data in (encode({"a": 1}), encode(["x"]), b"raw bytes")]
    car = read_car(car_bytes([blocks[0][0]], blocks))
    assert car.roots == (blocks[0][0],)
    assert car.blocks == dict(blocks)


def test_a_block_whose_bytes_do_not_match_its_cid_is_refused():
    good = encode({"name": "honest"})
    forged = encode({"name": "forged"})
    with pytest.raises(BadBlock, match="does not match its CID"):
        read_car(car_bytes([cid_of(good)], [(cid_of(good), forged)]))


def test_libipld_alone_would_have_accepted_the_forged_block():
    # Why the reader exists: the fast decoder trusts the CID it is given.
    good, forged = encode({"name": "honest"}), encode({"name": "forged"})
    _, blocks = libipld.decode_car(car_bytes([cid_of(good)], [(cid_of(good), forged)]))
    assert list(blocks.values()) == [{"name": "forged"}]


def test_one_flipped_bit_in_a_block_is_refused():
    data = bytearray(encode({"name": "x" * 50}))
    cid = cid_of(bytes(data))
    data[10] ^= 1
    with pytest.raises(BadBlock):
        read_car(car_bytes([cid], [(cid, bytes(data))]))


def test_a_cid_with_another_hash_function_is_refused_not_trusted():
    data = encode({"a": 1})
    cid = b"\x01\x71\x13\x40" + hashlib.sha512(data).digest()  # sha2-512: not what repositories use
    with pytest.raises(BadBlock, match="multihash 0x13"):
        read_car(car_bytes([cid], [(cid, data)]))


@pytest.mark.parametrize(
    "data",
    [b"", b"\x05abc", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", car_bytes([], [])[:-1] + b"\x02",
     encode({"version": 2, "roots": []}), b"\x0a" + encode({"version": 1, "roots": []})[:5]],
    ids=["empty", "short-header", "endless-varint", "version-2", "unprefixed", "truncated"],
)
def test_malformed_car_files_are_car_errors(data):
    with pytest.raises(CarError):
        read_car(data)


def test_a_truncated_block_section_is_a_car_error():
    data = encode({"a": 1})
    car = car_bytes([cid_of(data)], [(cid_of(data), data)])
    with pytest.raises(CarError):
        read_car(car[:-3])


# --- records in their JSON form ----------------------------------------------------------


def test_bytes_and_links_keep_their_kind_where_libipld_loses_it():
    link = cid_of(b"anything")
    block = encode({"blob": Link(link), "metadata": link, "n": -3, "ok": True, "none": None, "list": ["a", 1]})
    assert isinstance(libipld.decode_dag_cbor(block)["metadata"], bytes)
    assert type(libipld.decode_dag_cbor(block)["blob"]) is type(libipld.decode_dag_cbor(block)["metadata"])
    record = record_json(block)
    assert record["blob"] == {"$link": libipld.encode_cid(link)}
    assert set(record["metadata"]) == {"$bytes"}
    assert base64.b64decode(record["metadata"]["$bytes"] + "==") == link
    assert not record["metadata"]["$bytes"].endswith("=")
    assert record["n"] == -3 and record["ok"] is True and record["none"] is None and record["list"] == ["a", 1]


def test_a_blob_reference_reads_as_the_lexicon_blob_shape():
    cid = cid_of(b"shard bytes", codec=0x55)
    blob = {"$type": "blob", "ref": Link(cid), "mimeType": "application/x-tar", "size": 11}
    assert record_json(encode({"blob": blob}))["blob"] == {
        "$type": "blob", "ref": {"$link": libipld.encode_cid(cid)}, "mimeType": "application/x-tar", "size": 11,
    }


@pytest.mark.parametrize(
    "data, reason",
    [
        (encode({"a": 1}) + b"\x00", "follow the record"),
        (encode(["not", "a", "map"]), "a record is a map"),
        (b"\xa1\x01\x02", "not a text string"),
        (b"\xa2\x61a\x01\x61a\x02", "appears twice"),
        (b"\xa1\x61a\x7f", "not DAG-CBOR"),  # indefinite-length text
        (b"\xa1\x61a\xc1\x01", "tag 1"),
        (b"\xa1\x61a\xd8\x2a\x43\x01\x02\x03", "0x00"),
        (b"\xa1\x61a\x62\xff\xfe", "not UTF-8"),
        (b"\xa1\x61a\x9b" + b"\xff" * 8, "more items"),
        (b"\xa1\x61a\xfb\x7f\xf8\x00\x00\x00\x00\x00\x00", "NaN"),
        (b"\xa1\x61a" + b"\x81" * 300 + b"\x01", "nested deeper"),
        (b"\xa1\x61a\x5a\xff\xff\xff\xff", "past the end"),
    ],
    ids=["trailing", "array", "int-key", "duplicate-key", "indefinite", "other-tag", "bad-link", "utf8",
         "huge-array", "nan", "deep", "huge-bytes"],
)
def test_records_that_are_not_dag_cbor_maps_are_refused(data, reason):
    with pytest.raises(CborError, match=reason):
        record_json(data)


def test_a_record_libipld_would_refuse_or_misread_is_read_as_before():
    # Records without bytes or links take libipld's faster path; these must not.
    assert record_json(b"\xa2\x61b\x01\x61a\x02") == {"b": 1, "a": 2}  # keys out of order: libipld refuses
    with pytest.raises(CborError, match="additional information 26"):  # a 32-bit float: libipld reads it
        record_json(b"\xa1\x61a\xfa\x3f\xc0\x00\x00")
    assert record_json(encode({"a": 1.5, "b": [{"c": "d"}]})) == {"a": 1.5, "b": [{"c": "d"}]}


def test_unsigned_commit_is_the_commit_encoded_without_its_signature():
    unsigned = {"did": "did:web:example.com", "version": 3, "data": Link(cid_of(b"x")), "rev": "3kabc",
                "prev": None}
    block = encode({**unsigned, "sig": b"\x01" * 64})
    signed, signature = unsigned_commit(block)
    assert signed == encode(unsigned)
    assert signature == b"\x01" * 64


@pytest.mark.parametrize("extra", [
    {},
    {"aaa": b"\x63sig\x58\x40" + b"\x02" * 64},  # the bytes of a sig entry, inside an earlier value
    {"sig2": "x"},
    {"nested": {"sig": b"\x03" * 64}},
], ids=["plain", "decoy-before", "key-after", "nested-sig"])
def test_unsigned_commit_cuts_the_sig_entry_exactly_whatever_surrounds_it(extra):
    unsigned = {"did": "did:web:example.com", "version": 3, "data": Link(cid_of(b"x")), "rev": "3kabc",
                "prev": None, **extra}
    block = encode({**unsigned, "sig": b"\x01" * 64})
    assert unsigned_commit(block) == (encode(unsigned), b"\x01" * 64)
    short = encode({**unsigned, "sig": b"\x01" * 10})  # not the usual 64 bytes: read the long way
    assert unsigned_commit(short) == (encode(unsigned), b"\x01" * 10)


def test_a_commit_without_a_signature_is_refused():
    with pytest.raises(CborError, match="no sig"):
        unsigned_commit(encode({"did": "did:web:example.com", "version": 3}))


# --- signatures ----------------------------------------------------------------------------


@pytest.mark.parametrize("curve", ["secp256k1", "p256"])
def test_signatures_verify_with_the_multikey_of_the_signer(curve):
    signer = Signer(seed=12345, curve=curve)
    key = parse_multikey(signer.multikey)
    assert key.curve == curve
    assert key.verify(b"commit bytes", signer.sign(b"commit bytes"))
    assert not key.verify(b"other bytes", signer.sign(b"commit bytes"))
    assert not parse_multikey(Signer(seed=999, curve=curve).multikey).verify(b"commit bytes",
                                                                             signer.sign(b"commit bytes"))


@pytest.mark.parametrize("curve", ["secp256k1", "p256"])
def test_a_high_s_signature_is_refused_though_ecdsa_alone_accepts_it(curve):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    signer = Signer(seed=4242, curve=curve)
    high = signer.sign(b"commit", high_s=True)
    # The same signature, negated: valid ECDSA, but a second form of one signature.
    signer._key.public_key().verify(
        encode_dss_signature(int.from_bytes(high[:32], "big"), int.from_bytes(high[32:], "big")),
        b"commit", ec.ECDSA(hashes.SHA256()),
    )
    key = parse_multikey(signer.multikey)
    assert not key.verify(b"commit", high)
    assert key.verify(b"commit", signer.sign(b"commit"))


@pytest.mark.parametrize("signature", [b"", b"\x00" * 64, b"\x01" * 63, b"\xff" * 64, "text"])
def test_malformed_signatures_are_false_not_errors(signature):
    assert parse_multikey(Signer().multikey).verify(b"x", signature) is False


def test_legacy_verification_methods_name_the_curve_in_their_type():
    signer = Signer(seed=77, curve="p256")
    point = libipld.decode_multibase(signer.multikey)[1][2:]
    from atdata_index_appview.ingest._crafting import _base58

    document = {"verificationMethod": [{"id": "#atproto", "type": "EcdsaSecp256r1VerificationKey2019",
                                        "publicKeyMultibase": "z" + _base58(point)}]}
    key = signing_key_of(document, "did:plc:abc")
    assert key.curve == "p256" and key.verify(b"m", signer.sign(b"m"))


@pytest.mark.parametrize(
    "document, reason",
    [
        ({}, "no #atproto"),
        ({"verificationMethod": [{"id": "#other", "publicKeyMultibase": Signer().multikey}]}, "no #atproto"),
        ({"verificationMethod": [{"id": "#atproto", "publicKeyMultibase": "mAAAA"}]}, "base58btc"),
        ({"verificationMethod": [{"id": "#atproto", "publicKeyMultibase": "z111"}]}, "neither"),
        ({"verificationMethod": [{"id": "#atproto", "publicKeyMultibase": "zQ3shvyCCEVRoBVYWBZGn6vhwHHh1qaVH"}]},
         "not a point|neither"),
        ({"verificationMethod": [{"id": "#atproto", "publicKeyMultibase": 7}]}, "not a string"),
        ({"verificationMethod": "nope"}, "no #atproto"),
    ],
)
def test_documents_without_a_usable_key_say_why(document, reason):
    with pytest.raises(SigningKeyError, match=reason):
        signing_key_of(document, "did:plc:abc")


# --- the repository tree -----------------------------------------------------------------


def _tree(paths):
    repo = CraftedRepo(did="did:web:example.com")
    repo.commit([("create", path, {"n": index}) for index, path in enumerate(paths)])
    commit = libipld.decode_dag_cbor(repo.head.blocks[0][1])
    return repo, dict(repo.head.blocks), commit["data"]


def test_lookup_proves_presence_and_absence():
    repo, blocks, root = _tree(["app.bsky.feed.post/1", "science.alt.dataset.entry/3k1", "science.alt.dataset.label/3k2"])
    assert lookup(blocks, root, b"science.alt.dataset.entry/3k1") == repo.records["science.alt.dataset.entry/3k1"][0]
    assert lookup(blocks, root, b"science.alt.dataset.entry/3k0") is None
    assert lookup(blocks, root, b"zzz") is None


def test_walk_yields_a_key_range_in_order():
    paths = ["app.bsky.feed.post/1", "science.alt.dataset.entry/3k1", "science.alt.dataset.label/3k2",
             "science.alt.datasetx/1", "zzz.other/1"]
    repo, blocks, root = _tree(paths)
    found = [key for key, _ in walk(blocks, root, b"science.alt.dataset.", b"science.alt.dataset/")]
    assert found == [b"science.alt.dataset.entry/3k1", b"science.alt.dataset.label/3k2"]
    assert [key for key, _ in walk(blocks, root)] == sorted(path.encode() for path in paths)


def _node(left, entries):
    block = encode({"l": Link(left) if left else None, "e": entries})
    return cid_of(block), block


def test_walk_of_a_real_shaped_tree_skips_subtrees_outside_the_range():
    low_cid, low = _node(None, [{"p": 0, "k": b"a/1", "v": Link(cid_of(b"1")), "t": None}])
    high_cid, high = _node(None, [{"p": 0, "k": b"z/1", "v": Link(cid_of(b"3")), "t": None}])
    root_cid, root = _node(low_cid, [{"p": 0, "k": b"m/1", "v": Link(cid_of(b"2")), "t": Link(high_cid)}])
    blocks = {root_cid: root, low_cid: low, high_cid: high}
    assert [key for key, _ in walk(blocks, root_cid)] == [b"a/1", b"m/1", b"z/1"]
    # A subtree wholly outside the range is not needed: absent, it is not asked for.
    assert [key for key, _ in walk({root_cid: root, low_cid: low}, root_cid, b"a", b"b")] == [b"a/1"]
    assert lookup({root_cid: root, high_cid: high}, root_cid, b"z/1") == cid_of(b"3")
    with pytest.raises(MstError, match="not among the blocks"):
        lookup({root_cid: root}, root_cid, b"a/1")


@pytest.mark.parametrize(
    "node",
    [
        encode(["not", "a", "node"]),
        encode({"e": []}),
        encode({"l": "x", "e": []}),
        encode({"l": None, "e": [{"p": 0, "k": b"b", "v": Link(cid_of(b"1")), "t": None},
                                 {"p": 0, "k": b"a", "v": Link(cid_of(b"2")), "t": None}]}),
        encode({"l": None, "e": [{"p": 5, "k": b"b", "v": Link(cid_of(b"1")), "t": None}]}),
        encode({"l": None, "e": [{"p": 0, "k": "text", "v": Link(cid_of(b"1")), "t": None}]}),
        encode({"l": None, "e": ["entry"]}),
        b"\xff",
    ],
    ids=["array", "no-left", "left-not-link", "unordered", "prefix-too-long", "text-key", "entry-not-map",
         "undecodable"],
)
def test_malformed_tree_nodes_are_mst_errors(node):
    cid = cid_of(node)
    with pytest.raises(MstError):
        list(walk({cid: node}, cid))
    with pytest.raises(MstError):
        lookup({cid: node}, cid, b"a")


def test_a_subtree_holding_keys_outside_its_range_is_refused():
    stray_cid, stray = _node(None, [{"p": 0, "k": b"zz/9", "v": Link(cid_of(b"9")), "t": None}])
    root_cid, root = _node(stray_cid, [{"p": 0, "k": b"m/1", "v": Link(cid_of(b"2")), "t": None}])
    with pytest.raises(MstError, match="outside"):
        list(walk({root_cid: root, stray_cid: stray}, root_cid))


def test_a_node_reached_twice_is_refused():
    leaf_cid, leaf = _node(None, [])
    root_cid, root = _node(leaf_cid, [{"p": 0, "k": b"m/1", "v": Link(cid_of(b"2")), "t": Link(leaf_cid)}])
    with pytest.raises(MstError, match="twice"):
        list(walk({root_cid: root, leaf_cid: leaf}, root_cid))


# --- firehose frames -----------------------------------------------------------------------


def test_frames_decode_into_typed_events():
    repo = CraftedRepo(did="did:web:example.com")
    commit = repo.commit([("create", "science.alt.dataset.label/3k1", {"a": 1})])
    event = decode_frame(repo.commit_frame(commit, 7))
    assert isinstance(event, CommitEvent) and event.seq == 7 and event.repo == "did:web:example.com"
    assert event.ops[0].path == "science.alt.dataset.label/3k1" and event.ops[0].cid == commit.ops[0]["cid"]
    assert decode_frame(frame("#identity", {"seq": 8, "did": "did:plc:a", "handle": "a.test"})) == IdentityEvent(
        8, "did:plc:a", "a.test")
    assert decode_frame(frame("#account", {"seq": 9, "did": "did:plc:a", "active": False, "status": "deactivated"})) \
        == AccountEvent(9, "did:plc:a", False, "deactivated")
    assert isinstance(decode_frame(frame("#sync", {"seq": 10, "did": "did:plc:a", "rev": "3kabcdefghijk", "blocks": b""})),
                      SyncEvent)
    assert decode_frame(frame("#info", {"name": "OutdatedCursor"})) == InfoEvent("OutdatedCursor", None)
    assert decode_frame(frame("error", {"error": "FutureCursor", "message": "m"})) == ErrorFrame("FutureCursor", "m")
    assert decode_frame(frame("#handle", {"seq": 11})) == UnknownEvent("#handle", 11)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xff",
        "a text message",
        encode({"op": 1, "t": "#commit"}),
        encode({"op": 1, "t": "#commit"}) + encode({"seq": 1}) + encode({}),
        encode({"op": 2, "t": "#commit"}) + encode({}),
        encode({"op": 1}) + encode({}),
        frame("#commit", {"seq": "1", "repo": "did:plc:a"}),
        frame("#commit", {"seq": -1, "repo": "did:plc:a"}),
        frame("#commit", {"seq": True, "repo": "did:plc:a"}),
        frame("#identity", {"seq": 1}),
        frame("#account", {"seq": 1, "did": "did:plc:a", "active": "yes"}),
        frame("#commit", {"seq": 1, "repo": "did:plc:a", "rev": "3kabcdefghijk", "commit": Link(cid_of(b"c")),
                          "blocks": b"", "ops": [{"action": "explode", "path": "p", "cid": None}]}),
        frame("#commit", {"seq": 1, "repo": "did:plc:a", "rev": "3kabcdefghijk", "commit": Link(cid_of(b"c")),
                          "blocks": b"", "ops": ["op"]}),
        frame("#commit", {"seq": 1, "repo": "did:plc:a\x00b", "rev": "3kabcdefghijk", "commit": Link(cid_of(b"c")),
                          "blocks": b"", "ops": []}),
        frame("#commit", {"seq": 1, "repo": "did:plc:a", "rev": "zzzzzzzzzzzzzzzz", "commit": Link(cid_of(b"c")),
                          "blocks": b"", "ops": []}),
        frame("#commit", {"seq": 1, "repo": "did:plc:a", "rev": "3kabcdefghijk", "since": "yesterday",
                          "commit": Link(cid_of(b"c")), "blocks": b"", "ops": []}),
        frame("#identity", {"seq": 1, "did": "alice.test"}),
    ],
    ids=["empty", "garbage", "text", "header-only", "three-objects", "bad-op", "no-type", "seq-text",
         "seq-negative", "seq-bool", "identity-no-did", "active-text", "bad-action", "op-not-map", "did-with-nul",
         "rev-not-tid", "since-not-tid", "handle-for-did"],
)
def test_frames_that_do_not_decode_are_frame_errors(data):
    with pytest.raises(FrameError):
        decode_frame(data)
