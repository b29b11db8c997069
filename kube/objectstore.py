"""An S3-compatible object store: where it is, how to reach it, and what its errors mean.

A store is described by four values, the keys of a store Secret (docs/backups.md):
`endpoint` (the S3 API's URL), `region`, `accessKeyId` and `secretAccessKey`. A model server
reads them from its environment (the operator wires the member's store Secret into it); the
backups read them from Secrets in the hub namespace. Models live under `s3://bucket/prefix`.

boto3 does the S3 protocol. Its calls block, so async callers run them in a thread.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# The environment of a model server that fetches its model from a store (render.py writes
# them; the fallback set names the store it loads from when its own cannot be reached).
STORE_ENV = {
    "endpoint": "MODELDR_STORE_ENDPOINT",
    "region": "MODELDR_STORE_REGION",
    "accessKeyId": "MODELDR_STORE_ACCESS_KEY_ID",
    "secretAccessKey": "MODELDR_STORE_SECRET_ACCESS_KEY",
}
FALLBACK_STORE_ENV = {
    key: name.replace("_STORE_", "_FALLBACK_STORE_") for key, name in STORE_ENV.items()
}
STORE_SECRET_KEYS = tuple(STORE_ENV)

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class StoreError(Exception):
    """An object store refused or failed a request; the message says which and why."""


class StoreUnreachable(StoreError):
    """The store did not answer (connection refused, timeout): a store outage."""


class ObjectMissing(StoreError):
    """The store answered, and the object (or bucket) is not there."""


@dataclass(frozen=True)
class S3Url:
    bucket: str
    prefix: str  # no leading or trailing slash; "" is the bucket's root

    @classmethod
    def parse(cls, url: str) -> S3Url:
        if not url.startswith("s3://"):
            raise ValueError(f"{url!r} is not an s3:// URL (want s3://bucket/prefix)")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not _BUCKET.match(bucket):
            raise ValueError(f"{url!r}: {bucket!r} is not an S3 bucket name")
        prefix = prefix.strip("/")
        if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
            raise ValueError(f"{url!r}: the prefix has an empty, '.' or '..' segment")
        return cls(bucket, prefix)

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def child(self, name: str) -> S3Url:
        return S3Url(self.bucket, self.key(name.strip("/")))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


@dataclass(frozen=True)
class StoreConfig:
    """How to reach one store. `name` is for messages only (a Secret's or a role's name)."""

    name: str
    endpoint: str
    region: str
    access_key_id: str
    secret_access_key: str

    @classmethod
    def from_values(cls, name: str, values: dict[str, str]) -> StoreConfig:
        missing = [key for key in STORE_SECRET_KEYS if not values.get(key)]
        if missing:
            raise ValueError(f"store {name}: missing {', '.join(missing)}")
        return cls(
            name,
            values["endpoint"].rstrip("/"),
            values["region"],
            values["accessKeyId"],
            values["secretAccessKey"],
        )

    @classmethod
    def from_secret_data(cls, name: str, data: dict[str, str] | None) -> StoreConfig:
        """From a store Secret's `data` (base64 values, as the API returns them)."""
        values = {key: base64.b64decode(value).decode() for key, value in (data or {}).items()}
        return cls.from_values(name, values)

    @classmethod
    def from_env(cls, name: str, names: dict[str, str]) -> StoreConfig | None:
        """The store named in the environment by `names` (STORE_ENV or FALLBACK_STORE_ENV);
        None when its endpoint is not set."""
        if not os.environ.get(names["endpoint"]):
            return None
        return cls.from_values(name, {key: os.environ.get(env, "") for key, env in names.items()})


def client(store: StoreConfig, *, timeout: float = 5.0, attempts: int = 2) -> S3Client:
    """A boto3 S3 client for the store: path-style addressing (an endpoint URL, not bucket
    DNS names), short timeouts and few retries, so an outage is reported in seconds."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=timeout,
        read_timeout=max(timeout, 30.0),
        retries={"max_attempts": attempts, "mode": "standard"},
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        # Checksums only when the operation requires them: S3-compatible servers differ in
        # which of the newer CRC trailers they accept.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    s3: S3Client = boto3.client(
        "s3",
        endpoint_url=store.endpoint,
        region_name=store.region,
        aws_access_key_id=store.access_key_id,
        aws_secret_access_key=store.secret_access_key,
        config=config,
    )
    return s3


def describe(store: StoreConfig, url: S3Url | str, exc: BaseException) -> StoreError:
    """A StoreError saying what failed where, from a boto3/botocore exception."""
    from botocore.exceptions import ClientError, EndpointConnectionError

    where = f"store {store.name} ({store.endpoint}) {url}"
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
            return ObjectMissing(f"{where}: not found ({code})")
        return StoreError(f"{where}: {code or 'error'}: {exc}")
    if isinstance(exc, EndpointConnectionError) or _is_connection_error(exc):
        return StoreUnreachable(f"{where}: store unreachable: {exc}")
    return StoreError(f"{where}: {exc}")


def _is_connection_error(exc: BaseException) -> bool:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    return isinstance(exc, (BotoConnectionError, ConnectTimeoutError, ReadTimeoutError, OSError))


def get_bytes(s3: S3Client, store: StoreConfig, url: S3Url, name: str) -> bytes:
    try:
        body = s3.get_object(Bucket=url.bucket, Key=url.key(name))["Body"]
        data: bytes = body.read()
        return data
    except Exception as exc:
        raise describe(store, url.child(name), exc) from exc


def download(s3: S3Client, store: StoreConfig, url: S3Url, name: str, path: Any) -> None:
    """One object to a local file (multipart ranges for large objects, by s3transfer)."""
    try:
        s3.download_file(url.bucket, url.key(name), str(path))
    except Exception as exc:
        raise describe(store, url.child(name), exc) from exc


def list_keys(s3: S3Client, store: StoreConfig, url: S3Url) -> Iterator[tuple[str, int]]:
    """(name relative to the prefix, size) of every object under the prefix."""
    prefix = f"{url.prefix}/" if url.prefix else ""
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=url.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"][len(prefix) :], int(item["Size"])
    except Exception as exc:
        raise describe(store, url, exc) from exc
