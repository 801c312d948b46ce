"""An S3-compatible server on loopback (moto in server mode), and the configuration pointing at it.

Every test runs with AWS credentials and config files of its own (a user's
``~/.aws`` never leaks in) and an atdata configuration file whose ``[s3]``
section names the server, so the registry's backend reaches it the way a
user's would. ``cutting_proxy`` stands between the client and the server to
drop connections mid-body.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import socket
import struct
import threading
import time

import pytest

from atdata_core.plugins import reset_plugins

BUCKET = "atdata-tests"
#: A bucket reached through the cutting proxy ([s3.buckets.atdata-proxied] endpoint).
PROXIED_BUCKET = "atdata-proxied"
PART_SIZE = 5 * 1024 * 1024
_names = itertools.count()


@pytest.fixture(scope="session")
def moto_endpoint():
    """``http://127.0.0.1:<port>`` of a moto S3 server for the whole session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def admin(moto_endpoint):
    """A plain boto3 client on the server, for setting up and inspecting buckets."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    for bucket in (BUCKET, PROXIED_BUCKET):
        client.create_bucket(Bucket=bucket)
    return client


class CuttingProxy:
    """A TCP proxy on loopback that drops connections after they carried ``cut_after`` bytes to the client.

    A cut connection ends with a reset; one the server closed after its whole
    answer ends cleanly, so the client may still read what it has not read yet.

    ``arm(cut_after, times)`` cuts the next ``times`` connections that reach
    the threshold; ``requests`` holds the request heads seen since the last
    ``arm`` (so a test can check the ``Range`` a resumed GET asked for).
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self._lock = threading.Lock()
        self._cut_after = 0
        self._cuts_left = 0
        self.cuts_done = 0
        self.requests: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm(self, cut_after: int, times: int = 1) -> None:
        with self._lock:
            self._cut_after = cut_after
            self._cuts_left = times
            self.cuts_done = 0
            self.requests = []

    def ranges(self) -> list[str]:
        """The ``Range`` header of each GET seen since ``arm`` (``""`` for a GET without one)."""
        out = []
        for head in self.requests:
            if head.startswith("GET "):
                match = re.search(r"^range:\s*(\S+)", head, re.IGNORECASE | re.MULTILINE)
                out.append(match.group(1) if match else "")
        return out

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        threading.Thread(target=self._upload, args=(client, upstream), daemon=True).start()
        sent = 0
        cut = False
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                with self._lock:
                    cut = self._cuts_left > 0 and sent + len(data) > self._cut_after
                    if cut:
                        self._cuts_left -= 1
                        self.cuts_done += 1
                if cut:
                    client.sendall(data[: max(0, self._cut_after - sent)])
                    # The client gets what was sent before the connection ends (a reset right away
                    # could discard bytes still queued for it, so how far it got would be luck).
                    client.shutdown(socket.SHUT_WR)
                    time.sleep(0.2)
                    break
                client.sendall(data)
                sent += len(data)
        except OSError:
            cut = True
        if not cut:
            # The server closed its end after its answer: so does the proxy, cleanly, and the client
            # reads all of the answer whenever it comes to it (a reset would discard what it has not
            # read yet). The connection ends when the client closes it (see _upload).
            try:
                client.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            upstream.close()
            return
        # A reset rather than a clean close: what a dropped network connection looks like.
        # shutdown() first: it wakes the thread blocked reading the other direction, whose
        # reference would otherwise keep the socket open until the client timed out.
        for sock in (client, upstream):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
            sock.close()

    def _upload(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                head = data.split(b"\r\n\r\n", 1)[0]
                if re.match(rb"^[A-Z]+ /", head):
                    with self._lock:
                        self.requests.append(head.decode("latin-1"))
                upstream.sendall(data)
        except OSError:
            pass
        client.close()


@pytest.fixture(scope="session")
def cutting_proxy(moto_endpoint):
    proxy = CuttingProxy(int(moto_endpoint.rsplit(":", 1)[1]))
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture(autouse=True)
def own_configuration(tmp_path, tmp_path_factory, monkeypatch):
    """A user folder per test; nothing from the user's shell (a running sandbox, a publish default...)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("ATDATA_SANDBOX_STATE", str(tmp_path_factory.getbasetemp() / "no-user-sandbox"))
    for name in list(os.environ):
        if name.startswith(("ATDATA_S3_", "ATDATA_NETWORK_", "ATDATA_PLUGINS_", "ATDATA_PUBLISH_")) or name in (
            "ATDATA_CONFIG", "ATDATA_SANDBOX_PDS_URL", "ATDATA_ATPROTO_RESOLVER", "ATDATA_PASSWORD"
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ATDATA_HTTP_RETRIES", "2")
    monkeypatch.setenv("ATDATA_HTTP_BACKOFF", "0.01")
    reset_plugins()
    yield
    reset_plugins()


@pytest.fixture
def s3_config(tmp_path_factory, moto_endpoint, cutting_proxy, admin, monkeypatch):
    """Write the test configuration and AWS files; returns a function that rewrites the configuration.

    ``s3_config(s3_keys, tables)`` adds keys to ``[s3]`` and tables after it, and
    rediscovers plugins, so the registry's backend sees them.
    """
    folder = tmp_path_factory.mktemp("s3-config")
    aws_config = folder / "aws-config"
    aws_config.write_text("[default]\nregion = us-east-1\n\n[profile other]\nregion = us-east-1\n")
    credentials = folder / "aws-credentials"
    credentials.write_text(
        "[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n\n"
        "[other]\naws_access_key_id = other\naws_secret_access_key = other\n"
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws_config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role probe on a laptop
    config_file = folder / "atdata.toml"
    monkeypatch.setenv("ATDATA_CONFIG", str(config_file))

    def configure(s3_keys: str = "", tables: str = "") -> None:
        """Rewrite the configuration: ``s3_keys`` go into ``[s3]``, ``tables`` after it."""
        config_file.write_text(
            f'[s3]\nendpoint = "{moto_endpoint}"\nregion = "us-east-1"\npart_size = {PART_SIZE}\n{s3_keys}\n'
            f'[s3.buckets.{PROXIED_BUCKET}]\nendpoint = "{cutting_proxy.endpoint}"\nregion = "us-east-1"\n\n'
            f"{tables}"
        )
        reset_plugins()

    configure()
    yield configure
    reset_plugins()


@pytest.fixture
def prefix(request):
    """A key prefix no other test uses."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:60]
    return f"t{next(_names):04d}-{name}"


@pytest.fixture
def federation(pds_sandbox, monkeypatch):
    """This machine on the local federation: the sandbox's PLC directory, and its two hosts allowed
    by the network policy (records name them, and they are on loopback)."""
    from urllib.parse import urlsplit

    monkeypatch.setenv("ATDATA_PLC_URL", pds_sandbox.plc_url)
    hosts = sorted({urlsplit(url).netloc for url in (pds_sandbox.pds_url, pds_sandbox.plc_url)})
    monkeypatch.setenv("ATDATA_NETWORK_ALLOW_HOSTS", ",".join(hosts))
    reset_plugins()
    return pds_sandbox
