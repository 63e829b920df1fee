"""Blobs and the search index on an S3-compatible object store (``s3://bucket/prefix``).

A workspace's ``blob_url`` and ``index_url`` (``garrison.toml``) are folders of the workspace by
default; either may name a bucket and key prefix instead. How to reach the store comes from
``[workspace.s3]`` first, then from the standard AWS variables and files (``AWS_ENDPOINT_URL``,
``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_PROFILE``...), so one workspace can point at Ceph RGW, SeaweedFS, Garage or AWS S3.

Two rules, both fail closed:

* Blobs are sealed in this process exactly as on disk (:mod:`garrison.store.blobs`): the store
  only ever receives ciphertext, and every read checks the hash.
* The index holds chunk text in the clear. Above UNCLASSIFIED it may only live in a bucket whose
  default encryption (GetBucketEncryption) is configured; ``init`` refuses any other bucket and
  ``garrison doctor`` fails it (:func:`check_index_encryption`).

Plain HTTP is accepted only to a loopback endpoint (a test server); anything else needs HTTPS.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from garrison.core.config import S3Settings
from garrison.core.errors import InvalidInput, MissingExtra, ServiceUnavailable

__all__ = [
    "S3Connection",
    "S3Location",
    "bucket_encryption",
    "bucket_exists",
    "check_empty",
    "is_s3_url",
    "parse_s3_url",
    "resolve_connection",
]

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_DEFAULT_REGION = "us-east-1"
#: The error code of GetBucketEncryption on a bucket without default encryption.
_NO_SSE = "ServerSideEncryptionConfigurationNotFoundError"


def is_s3_url(url: str) -> bool:
    """True for ``s3://...`` (a place on object storage rather than a workspace folder)."""
    return url.lower().startswith("s3://")


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix (without leading or trailing slashes; may be empty)."""

    bucket: str
    prefix: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key(self, name: str) -> str:
        """The object key of ``name`` under this prefix."""
        return f"{self.prefix}/{name}" if self.prefix else name


def parse_s3_url(url: str) -> S3Location:
    """``s3://bucket/some/prefix`` -> its location; a malformed URL is :class:`InvalidInput`."""
    if not is_s3_url(url):
        raise InvalidInput(f"{url!r} is not an s3:// URL.")
    rest = url[5:]
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise InvalidInput(
            f"{url!r} does not name a valid bucket (3 to 63 lower-case letters, digits, dots or "
            "hyphens); write s3://bucket/prefix."
        )
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise InvalidInput(f"The key prefix of {url!r} has an empty, '.' or '..' part.")
    if any(ord(c) < 32 for c in prefix) or "?" in prefix or "#" in prefix:
        raise InvalidInput(f"The key prefix of {url!r} has characters an object key cannot use.")
    return S3Location(bucket, prefix)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class S3Connection:
    """Everything needed to talk to one object store, resolved from settings and environment.

    ``access_key_id`` and friends are None when boto3's own chain (environment, shared
    credentials file, instance role) is to find them.
    """

    endpoint_url: str | None
    region: str
    path_style: bool
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None

    @property
    def shown(self) -> str:
        """Where the store is, for messages and the audit log (never with credentials)."""
        return self.endpoint_url or f"AWS S3 ({self.region})"

    @cached_property
    def _client(self) -> Any:
        return self._new_client()

    def client(self) -> Any:
        """A boto3 S3 client (path-style addressing unless the settings say otherwise), made
        once per connection (boto3 clients are thread-safe)."""
        return self._client

    def _new_client(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError as exc:
            raise MissingExtra("s3", "boto3") from exc
        config = Config(
            s3={"addressing_style": "path" if self.path_style else "virtual"},
            connect_timeout=10,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
            config=config,
        )

    def storage_options(self) -> dict[str, str]:
        """LanceDB's ``storage_options`` for this store: the same endpoint, region, addressing
        and credentials as boto3 would use (credentials resolved through boto3's chain)."""
        options = {
            "aws_region": self.region,
            "aws_virtual_hosted_style_request": "false" if self.path_style else "true",
        }
        if self.endpoint_url:
            options["aws_endpoint"] = self.endpoint_url
            if self.endpoint_url.lower().startswith("http://"):
                options["allow_http"] = "true"
        key, secret, token = self.access_key_id, self.secret_access_key, self.session_token
        if key is None:
            try:
                import boto3
            except ImportError as exc:
                raise MissingExtra("s3", "boto3") from exc
            found = boto3.session.Session().get_credentials()
            if found is not None:
                frozen = found.get_frozen_credentials()
                key, secret, token = frozen.access_key, frozen.secret_key, frozen.token
        if key is not None and secret is not None:
            options["aws_access_key_id"] = key
            options["aws_secret_access_key"] = secret
            if token:
                options["aws_session_token"] = token
        return options


def resolve_connection(
    settings: S3Settings | None, environ: Mapping[str, str] | None = None
) -> S3Connection:
    """The connection ``[workspace.s3]`` describes, completed from the AWS environment.

    Plain HTTP is refused unless the endpoint is on loopback (:class:`InvalidInput`).
    """
    env = os.environ if environ is None else environ
    given = settings or S3Settings()
    endpoint = given.endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"The S3 endpoint {endpoint!r} is not an http(s) URL.")
        if parts.username or parts.password:
            raise InvalidInput(
                "The S3 endpoint URL may not carry credentials; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY instead."
            )
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise InvalidInput(
                f"The S3 endpoint {endpoint} is plain HTTP; use HTTPS (plain HTTP is accepted "
                "only on loopback)."
            )
    region = given.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if (given.access_key_id is None) != (given.secret_access_key is None):
        raise InvalidInput(
            "[workspace.s3] needs both access-key-id and secret-access-key, or neither."
        )
    return S3Connection(
        endpoint_url=endpoint or None,
        region=region or _DEFAULT_REGION,
        path_style=given.path_style,
        access_key_id=given.access_key_id,
        secret_access_key=given.secret_access_key,
    )


def translate(exc: Exception, conn: S3Connection, what: str) -> ServiceUnavailable:
    """A boto3 failure as the one-sentence error the adapters show."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", "error"))
        return ServiceUnavailable(
            f"The object store at {conn.shown} refused to {what} ({code}); check the bucket, "
            "the credentials and their permissions.",
            service=conn.shown,
            reason="http-status",
        )
    return ServiceUnavailable(
        f"The object store at {conn.shown} cannot be reached to {what} "
        f"({type(exc).__name__}); check the endpoint URL and the network.",
        service=conn.shown,
        reason="unreachable",
    )


def _boto_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def bucket_encryption(conn: S3Connection, bucket: str) -> str | None:
    """The bucket's default server-side encryption (``AES256``, ``aws:kms``...), or None when
    it has none. Any other failure to read it is :class:`ServiceUnavailable` (fail closed)."""
    from botocore.exceptions import ClientError

    client = conn.client()
    try:
        answer = client.get_bucket_encryption(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == _NO_SSE:
            return None
        raise translate(exc, conn, f"read the encryption of bucket {bucket}") from exc
    except _boto_errors() as exc:
        raise translate(exc, conn, f"read the encryption of bucket {bucket}") from exc
    rules = (answer.get("ServerSideEncryptionConfiguration") or {}).get("Rules") or []
    for rule in rules:
        default = rule.get("ApplyServerSideEncryptionByDefault") or {}
        algorithm = default.get("SSEAlgorithm")
        if algorithm:
            return str(algorithm)
    return None


def bucket_exists(conn: S3Connection, location: S3Location) -> None:
    """Raise :class:`ServiceUnavailable` unless the bucket answers (HeadBucket)."""
    try:
        conn.client().head_bucket(Bucket=location.bucket)
    except _boto_errors() as exc:
        raise translate(exc, conn, f"open bucket {location.bucket}") from exc


def check_empty(conn: S3Connection, location: S3Location) -> None:
    """Raise :class:`InvalidInput` unless the bucket exists and nothing lies under the prefix
    (``init`` never adopts another workspace's objects)."""
    client = conn.client()
    prefix = location.key("") if location.prefix else ""
    try:
        found = client.list_objects_v2(Bucket=location.bucket, Prefix=prefix, MaxKeys=1)
    except _boto_errors() as exc:
        raise translate(exc, conn, f"list bucket {location.bucket}") from exc
    if found.get("KeyCount", 0):
        raise InvalidInput(
            f"Something already exists at {location.url}; choose a new or empty prefix."
        )
