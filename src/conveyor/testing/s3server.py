"""An S3-compatible server for tests, and the pytest fixtures that use it.

By default moto's server runs on 127.0.0.1 on a free port, in a thread of the
test process, for the whole session. Set ``CONVEYOR_TEST_S3_ENDPOINT`` to use
another server instead (MinIO in CI, say); its credentials then come from the
usual ``AWS_*`` variables.

Use the fixtures by importing them into a test module::

    from conveyor.testing.s3server import s3_bucket_uri, s3_endpoint  # noqa: F401

    def test_round_trip(s3_bucket_uri: str) -> None:
        store = open_content_store(s3_bucket_uri)
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor.core.settings import reset_settings

ENDPOINT_ENV = "CONVEYOR_TEST_S3_ENDPOINT"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_INSTALL_HINT = "pip install 'conveyor-mlops[dev]'"


def _missing(what: str) -> None:
    message = f"S3 tests need {what}: {_INSTALL_HINT}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def wait_until_up(endpoint: str, timeout: float = 10.0) -> None:
    """Return once ``endpoint`` answers HTTP (any status); raise ``TimeoutError`` if never."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(endpoint, timeout=1.0):
                return
        except urllib.error.HTTPError:  # an error status is still an answer
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"S3 server at {endpoint} did not answer: {exc}") from exc
            time.sleep(0.05)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Run moto's S3-compatible server on 127.0.0.1 (free port); yield its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        wait_until_up(endpoint)
        yield endpoint
    finally:
        server.stop()


def _client(endpoint: str) -> Any:
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=endpoint)


def _empty_and_delete(client: Any, bucket: str) -> None:
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        objects = [{"Key": item["Key"]} for item in page.get("Contents", ())]
        if objects:
            client.delete_objects(Bucket=bucket, Delete={"Objects": objects})
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The endpoint URL of an S3-compatible server for the whole session."""
    external = os.environ.get(ENDPOINT_ENV)
    if external:
        yield external.rstrip("/")
        return
    try:
        import moto.server  # noqa: F401
    except ImportError:
        _missing("moto's server (moto[server])")
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket_uri(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty bucket for one test, as ``s3://bucket/prefix``.

    Sets ``CONVEYOR_S3_ENDPOINT_URL`` (and fake AWS credentials when moto is used),
    so ``open_content_store(uri)`` finds the server without more arguments.
    """
    try:
        import boto3  # noqa: F401
    except ImportError:
        _missing("boto3")
    if not os.environ.get(ENDPOINT_ENV):
        for name, value in FAKE_CREDENTIALS.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("CONVEYOR_S3_ENDPOINT_URL", s3_endpoint)
    reset_settings()
    client = _client(s3_endpoint)
    bucket = f"conveyor-test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    try:
        yield f"s3://{bucket}/prefix"
    finally:
        reset_settings()
        with contextlib.suppress(Exception):  # cleanup must not hide the test's outcome
            _empty_and_delete(client, bucket)
