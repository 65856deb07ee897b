"""S3-compatible object storage (AWS S3, MinIO, Ceph, moto) as an artifact backend.

``boto3`` is imported here only, so it loads when an ``s3://`` store is opened.
Uploads use ``upload_file``: big files go up in parts and the object appears
only when the multipart upload completes, so readers never see a partial
object. Downloads stream to disk in chunks.

The bucket must exist; Conveyor never creates one behind your back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import boto3
import botocore.exceptions as bexc
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from conveyor.core.errors import BackendUnavailable, InvalidArgument, NotFound
from conveyor.core.settings import get_settings
from conveyor.core.uris import safe_relpath, split_bucket

T = TypeVar("T")

_MIB = 1 << 20
_TRANSFER = TransferConfig(
    multipart_threshold=8 * _MIB,
    multipart_chunksize=8 * _MIB,
    max_concurrency=8,
    io_chunksize=_MIB,
)
_CLIENT_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"},
    connect_timeout=10,
    read_timeout=60,
    max_pool_connections=32,
)
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
_CONNECTION_ERRORS = (
    bexc.EndpointConnectionError,
    bexc.ConnectionClosedError,
    bexc.ConnectTimeoutError,
    bexc.ReadTimeoutError,
    bexc.ConnectionError,
)


class S3Backend:
    """Objects stored under ``s3://bucket/prefix``.

    Args:
        uri: ``s3://bucket`` or ``s3://bucket/some/prefix``.
        endpoint_url: an S3-compatible server; defaults to
            ``CONVEYOR_S3_ENDPOINT_URL`` (then AWS's own configuration).

    Raises:
        NotFound: the bucket does not exist.
        BackendUnavailable: the server cannot be reached or refuses the credentials.
    """

    def __init__(self, uri: str, endpoint_url: str | None = None) -> None:
        if not uri.startswith("s3://"):
            raise InvalidArgument(f"{uri!r} is not an s3:// URI", field="uri")
        self.bucket, prefix = split_bucket(uri)
        self.prefix = safe_relpath(prefix, field="uri") + "/" if prefix else ""
        self.uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.endpoint_url = endpoint_url or get_settings().s3_endpoint_url
        self._client: Any = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, config=_CLIENT_CONFIG
        )
        self._call(lambda: self._client.head_bucket(Bucket=self.bucket), key=None)

    def __repr__(self) -> str:
        return f"S3Backend({self.uri!r}, endpoint_url={self.endpoint_url!r})"

    # -- error mapping -------------------------------------------------------------

    def _where(self) -> str:
        return self.uri + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    def _raise(self, exc: Exception, key: str | None) -> NoReturn:
        if isinstance(exc, bexc.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code == "NoSuchBucket" or (key is None and code in _MISSING_CODES):
                raise NotFound(
                    f"bucket {self.bucket!r} does not exist at "
                    f"{self.endpoint_url or 'the default S3 endpoint'}; create it first "
                    f"(aws s3 mb s3://{self.bucket})"
                ) from None
            if code in _MISSING_CODES:
                raise NotFound(f"no object {key!r} in {self.uri}") from None
            if code in {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
                raise BackendUnavailable(
                    f"access to {self._where()} was refused ({code}); check the AWS credentials"
                ) from exc
            raise BackendUnavailable(f"S3 request to {self._where()} failed: {exc}") from exc
        if isinstance(exc, bexc.NoCredentialsError):
            raise BackendUnavailable(
                f"no AWS credentials found for {self._where()}; "
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ) from exc
        if isinstance(exc, _CONNECTION_ERRORS):
            raise BackendUnavailable(f"cannot reach {self._where()}: {exc}") from exc
        raise exc

    def _call(self, fn: Callable[[], T], key: str | None) -> T:
        try:
            return fn()
        except (bexc.BotoCoreError, bexc.ClientError) as exc:
            self._raise(exc, key)

    def _key(self, key: str) -> str:
        return self.prefix + safe_relpath(key, field="key")

    # -- ByteBackend ---------------------------------------------------------------

    def put_file(self, key: str, src: Path) -> None:
        """Upload ``src``; multipart for big files, visible only once complete."""
        src = Path(src)
        if not src.is_file():
            raise NotFound(f"cannot store {str(src)!r}: no such file")
        full = self._key(key)
        self._call(
            lambda: self._client.upload_file(str(src), self.bucket, full, Config=_TRANSFER),
            key=key,
        )

    def put_bytes(self, key: str, data: bytes) -> None:
        """Upload ``data`` in one request."""
        full = self._key(key)
        self._call(
            lambda: self._client.put_object(Bucket=self.bucket, Key=full, Body=bytes(data)),
            key=key,
        )

    def get_file(self, key: str, dest: Path) -> None:
        """Stream the object into ``dest`` in chunks."""
        full = self._key(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._call(
            lambda: self._client.download_file(self.bucket, full, str(dest), Config=_TRANSFER),
            key=key,
        )

    def get_bytes(self, key: str) -> bytes:
        """The whole object in memory."""
        full = self._key(key)

        def read() -> bytes:
            body = self._client.get_object(Bucket=self.bucket, Key=full)["Body"]
            with body:
                return bytes(body.read())

        return self._call(read, key=key)

    def size(self, key: str) -> int | None:
        """Object size in bytes, ``None`` if missing."""
        full = self._key(key)
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=full)
        except bexc.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING_CODES:
                return None
            self._raise(exc, key)
        except bexc.BotoCoreError as exc:
            self._raise(exc, key)
        return int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        return self.size(key) is not None

    def delete(self, key: str) -> None:
        """Remove the object (S3 does not mind a missing key)."""
        full = self._key(key)
        self._call(lambda: self._client.delete_object(Bucket=self.bucket, Key=full), key=key)

    # -- direct uploads (a server hands out presigned URLs, then checks what came) --

    def presign_put(self, key: str, expires_in: int) -> str:
        """A URL anyone may PUT ``key``'s bytes to, without credentials, for ``expires_in`` seconds."""
        full = self._key(key)
        return str(self._call(lambda: self._client.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": full}, ExpiresIn=expires_in,
        ), key=key))

    def read_version(self, key: str) -> tuple[str, Iterator[bytes]]:
        """The object's ETag and its bytes in chunks, all of that one version (``IfMatch``)."""
        full = self._key(key)
        etag = str(self._call(lambda: self._client.head_object(Bucket=self.bucket, Key=full), key=key)["ETag"])

        def chunks() -> Iterator[bytes]:
            body = self._call(lambda: self._client.get_object(Bucket=self.bucket, Key=full, IfMatch=etag),
                              key=key)["Body"]
            with body:
                yield from body.iter_chunks(_MIB)

        return etag, chunks()

    def copy_version(self, src: str, dst: str, etag: str) -> None:
        """Copy object ``src`` to ``dst`` only if ``src`` is still version ``etag`` (else ``InvalidArgument``)."""
        source = {"Bucket": self.bucket, "Key": self._key(src)}
        full = self._key(dst)
        try:
            self._client.copy(source, self.bucket, full, ExtraArgs={"CopySourceIfMatch": etag}, Config=_TRANSFER)
        except bexc.ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in {"PreconditionFailed", "412"}:
                raise InvalidArgument(f"{src} changed while it was being checked", field="upload_id") from None
            self._raise(exc, src)
        except bexc.BotoCoreError as exc:
            self._raise(exc, src)

    # -- upkeep of staged uploads (``server/upkeep.py``) ------------------------------

    def expire_under(self, prefix: str, days: int) -> bool:
        """Have the bucket expire objects under ``prefix`` and abort multipart uploads after ``days``.

        Adds (or updates) one lifecycle rule named after the prefix and keeps the
        bucket's other rules. ``False`` when the bucket does not allow it (no
        permission, or a store without lifecycle support): sweeping still works.
        """
        full = self.prefix + safe_relpath(prefix, field="prefix") + "/"
        rule = {"ID": f"conveyor-expire {full}"[:255], "Filter": {"Prefix": full}, "Status": "Enabled",
                "Expiration": {"Days": days}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days}}
        try:
            try:
                rules = self._client.get_bucket_lifecycle_configuration(Bucket=self.bucket).get("Rules", [])
            except bexc.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                    raise
                rules = []
            if rule in rules:
                return True
            rules = [r for r in rules if r.get("ID") != rule["ID"]] + [rule]
            self._client.put_bucket_lifecycle_configuration(Bucket=self.bucket,
                                                            LifecycleConfiguration={"Rules": rules})
        except (bexc.BotoCoreError, bexc.ClientError):
            return False
        return True

    def stale(self, prefix: str, before: float) -> Sequence[str]:
        """Keys under ``prefix`` last written before ``before`` (seconds since the epoch)."""
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
        keys: list[str] = []

        def collect() -> None:
            for page in pages:
                keys.extend(item["Key"][len(self.prefix):] for item in page.get("Contents", ())
                            if item["LastModified"].timestamp() < before)

        self._call(collect, key=None)
        return keys

    def abort_multipart(self, prefix: str, before: float) -> int:
        """Abort the multipart uploads under ``prefix`` started before ``before``; how many."""
        paginator = self._client.get_paginator("list_multipart_uploads")
        aborted = 0

        def abort() -> None:
            nonlocal aborted
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for upload in page.get("Uploads", ()):
                    if upload["Initiated"].timestamp() < before:
                        self._client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                            UploadId=upload["UploadId"])
                        aborted += 1

        self._call(abort, key=None)
        return aborted

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with ``prefix`` (relative to the store's prefix), sorted."""
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
        keys: list[str] = []

        def collect() -> None:
            for page in pages:
                keys.extend(item["Key"][len(self.prefix) :] for item in page.get("Contents", ()))

        self._call(collect, key=None)
        return iter(sorted(keys))

    def local_path(self, key: str) -> Path | None:
        """Always ``None``: objects are not local files."""
        return None
