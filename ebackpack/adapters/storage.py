"""S3-compatible object storage (SeaweedFS embedded, MinIO/Ceph/AWS in production) through boto3."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from ebackpack.adapters.files import private_dir, write_private
from ebackpack.config import Settings


class ObjectStore:
    def __init__(self, settings: Settings, public: bool = False):
        """`public`: addressed at the origin browsers use, for pre-signed links."""
        self.bucket = settings.s3_bucket
        endpoint = (settings.s3_public_endpoint or settings.s3_endpoint) if public else settings.s3_endpoint
        self._s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=settings.s3_access_key,
            aws_secret_access_key=settings.s3_secret_key,
            region_name=settings.s3_region,
            config=Config(
                s3={"addressing_style": "path"},
                signature_version="s3v4",
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )

    def ensure_bucket(self) -> None:
        try:
            self._s3.head_bucket(Bucket=self.bucket)
        except ClientError:
            self._s3.create_bucket(Bucket=self.bucket)

    def put(self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None) -> None:
        self._s3.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, Metadata=metadata or {}
        )

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=key)

    def get(self, key: str) -> bytes:
        body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        return bytes(body.read())

    def presigned_url(self, key: str, expires_in: int, filename: str | None = None) -> str:
        """A download link that stops working after `expires_in` seconds: no credentials needed."""
        params: dict[str, str] = {"Bucket": self.bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        url: str = self._s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)
        return url

    def stream(self, key: str, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
        """The object's bytes in chunks: large downloads never sit in memory whole."""
        body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        yield from body.iter_chunks(chunk_size)

    def keys(self, prefix: str = "") -> Iterator[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    def download(self, key: str, target: Path) -> Path:
        """The object as a private file (a certificate names its learner): 0600 in a 0700 folder."""
        private_dir(target.parent)
        return write_private(target, self.get(key))
