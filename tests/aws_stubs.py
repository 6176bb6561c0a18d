"""botocore's Stubber for code that asks a factory for its clients: every request is checked
against the real service model, and a call nobody expected fails the test."""

from __future__ import annotations

import io
from typing import Any

import boto3
from botocore.response import StreamingBody
from botocore.stub import Stubber

REGION = "us-east-1"


class Stubbed:
    """One stubbed client per service, handed out the way the code under test asks for clients
    (``clients("s3")``); ``stub("s3")`` is its Stubber, ``done()`` asserts nothing is left."""

    def __init__(self, region: str = REGION) -> None:
        self.region = region
        self.clients: dict[str, Any] = {}
        self.stubbers: dict[str, Stubber] = {}

    def __call__(self, service: str) -> Any:
        if service not in self.clients:
            client = boto3.client(service, region_name=self.region)
            self.clients[service] = client
            self.stubbers[service] = Stubber(client)
            self.stubbers[service].activate()
        return self.clients[service]

    def stub(self, service: str) -> Stubber:
        self(service)
        return self.stubbers[service]

    def done(self) -> None:
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


def appconfig_configuration(text: str, token: str) -> dict[str, Any]:
    """An AppConfig data plane GetLatestConfiguration answer: ``text`` ("" when nothing changed)."""
    body = text.encode()
    return {
        "Configuration": StreamingBody(io.BytesIO(body), len(body)),
        "NextPollConfigurationToken": token,
        "ContentType": "application/json",
    }
