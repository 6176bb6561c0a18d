"""The AI gateway's passages to the tools gateway (shared.passage), over a KMS HMAC key (moto)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from shared.passage import PassageChecker, PassageIssuer, message
from tests.lambdas.passage_fixtures import CountingKms, Passages, hmac_key, passages_over

TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl"


def test_a_passage_the_gateway_made_for_a_token_is_that_tokens_and_no_others(passages: Passages) -> None:
    passage = passages.issue(TOKEN)
    assert len(passage) == 43
    assert "=" not in passage
    assert passages.check(TOKEN, passage)
    assert not passages.check(TOKEN + "x", passage)  # another token
    assert not passages.check("another.token.here", passage)


def test_a_passage_under_another_key_is_refused(passages: Passages) -> None:
    other = passages_over(passages.kms, hmac_key(passages.kms.client))
    assert not passages.check(TOKEN, other.issue(TOKEN))


@pytest.mark.parametrize(
    "passage",
    [
        *(None, "", "x", "A" * 42, "A" * 44, "A" * 42 + "=", "A" * 42 + "+", "A" * 42 + "/", "Á" * 43, " " + "A" * 42),
        *("A" * 42 + "B", "A" * 42 + "z", "A" * 42 + "_"),  # bits past the MAC's set: another spelling of one
    ],
)
def test_anything_not_shaped_like_a_passage_is_refused_without_a_kms_call(
    passages: Passages, passage: str | None
) -> None:
    assert not passages.check(TOKEN, passage)
    assert passages.kms.calls == []


def test_a_well_shaped_passage_kms_refuses_is_refused(passages: Passages) -> None:
    assert not passages.check(TOKEN, "A" * 43)
    assert passages.kms.calls == ["VerifyMac"]


def test_each_side_asks_kms_once_per_token_in_a_container(passages: Passages) -> None:
    passage = passages.issue(TOKEN)
    assert passages.issue(TOKEN) == passage
    assert passages.check(TOKEN, passage)
    assert passages.check(TOKEN, passage)
    assert passages.kms.calls == ["GenerateMac", "VerifyMac"]
    # A refusal is not kept: the same wrong passage is asked about again (and refused again).
    assert not passages.check(TOKEN, "Q" * 43)
    assert not passages.check(TOKEN, "Q" * 43)
    assert passages.kms.calls == ["GenerateMac", "VerifyMac", "VerifyMac", "VerifyMac"]


def test_what_each_side_keeps_is_bounded(passages: Passages) -> None:
    issue = PassageIssuer(lambda: passages.kms, passages.key_id, cached=2)
    issue("a.b.c")
    issue("d.e.f")
    issue("a.b.c")  # two kept: not asked again
    assert passages.kms.calls.count("GenerateMac") == 2
    issue("g.h.i")  # a third: the least recently used (d.e.f) is dropped
    issue("a.b.c")
    assert passages.kms.calls.count("GenerateMac") == 3
    issue("d.e.f")
    assert passages.kms.calls.count("GenerateMac") == 4


def test_the_mac_is_over_the_tokens_digest_with_the_schemes_prefix() -> None:
    """Bound to one token and to this use: KMS is never sent the token itself."""
    text = message(TOKEN)
    assert text.startswith(b"genai-platform tools-gateway passage v1\n")
    assert len(text) == len(b"genai-platform tools-gateway passage v1\n") + 32
    assert TOKEN.encode() not in text


def test_a_kms_failure_is_raised_not_taken_for_a_refusal() -> None:
    """The interceptor decides what a KMS failure means (no tools); the check does not hide it."""
    client = boto3.client("kms", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_client_error("verify_mac", "ThrottlingException", http_status_code=400)
        check = PassageChecker(lambda: CountingKms(client), "arn:aws:kms:us-east-1:123456789012:key/k")
        with pytest.raises(ClientError):
            check(TOKEN, "A" * 43)


def test_a_passage_has_one_spelling(passages: Passages) -> None:
    """The last character carries 4 bits of the MAC and 2 zero bits: setting those is no passage."""
    passage = passages.issue(TOKEN)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(passage[-1])
    assert last % 4 == 0
    for other in range(last + 1, last + 4):
        assert not passages.check(TOKEN, passage[:-1] + alphabet[other])
    assert passages.check(TOKEN, passage)


def test_an_answer_that_does_not_say_the_mac_is_valid_is_no_passage() -> None:
    client = boto3.client("kms", region_name="us-east-1")
    key = "arn:aws:kms:us-east-1:123456789012:key/k"
    with Stubber(client) as stubber:
        stubber.add_response("verify_mac", {"KeyId": key, "MacValid": False, "MacAlgorithm": "HMAC_SHA_256"})
        assert not PassageChecker(lambda: client, key)(TOKEN, "A" * 43)


class Failing:
    """A KMS client whose VerifyMac fails with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def verify_mac(self, **request: Any) -> Any:
        raise self.error


class WithResponse(Exception):  # noqa: N818 - shaped like botocore's ClientError, which it stands for
    def __init__(self, response: Any) -> None:
        super().__init__("failed")
        self.response = response


@pytest.mark.parametrize(
    "error",
    [RuntimeError("no connection"), WithResponse({}), WithResponse(None), WithResponse({"Error": {}})],
    ids=["not botocore's", "no Error", "no response", "no code"],
)
def test_a_failure_that_is_not_kmss_refusal_of_the_mac_is_raised_as_it_came(error: Exception) -> None:
    check = PassageChecker(lambda: Failing(error), "arn:aws:kms:us-east-1:123456789012:key/k")
    with pytest.raises(type(error)) as raised:
        check(TOKEN, "A" * 43)
    assert raised.value is error
