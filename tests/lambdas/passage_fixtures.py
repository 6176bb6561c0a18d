"""A KMS HMAC key (moto) and the two sides of the AI gateway's passages over it (shared.passage)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from shared.passage import PassageChecker, PassageIssuer


@dataclass
class CountingKms:
    """The KMS client, counting the MAC calls made through it."""

    client: Any
    calls: list[str] = field(default_factory=list)

    def generate_mac(self, **request: Any) -> Any:
        self.calls.append("GenerateMac")
        return self.client.generate_mac(**request)

    def verify_mac(self, **request: Any) -> Any:
        self.calls.append("VerifyMac")
        return self.client.verify_mac(**request)


@dataclass
class Passages:
    key_id: str
    kms: CountingKms
    issue: PassageIssuer
    check: PassageChecker


def passages_over(kms: CountingKms, key_id: str) -> Passages:
    return Passages(key_id, kms, PassageIssuer(lambda: kms, key_id), PassageChecker(lambda: kms, key_id))


def hmac_key(client: Any) -> str:
    metadata = client.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]
    return str(metadata["Arn"])


@pytest.fixture
def passages() -> Iterator[Passages]:
    """Both sides over a new HMAC key in a KMS of moto's."""
    with mock_aws():
        client = boto3.client("kms", region_name="us-east-1")
        yield passages_over(CountingKms(client), hmac_key(client))
