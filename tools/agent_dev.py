"""Run the agent locally and send it one request: `make agent-dev` (stubbed AWS) or
`make agent-dev REAL=1` (real AWS with your credentials and a real token).

Stubbed (the default): the agent is served by BedrockAgentCoreApp on loopback exactly as on
AgentCore Runtime, with a fake tools gateway (a real MCP server listing the caller's group's
tools), a signing key standing in for the Cognito pool, and Bedrock answering from a script (a
tool call, then an answer). It prints the request, the agent's answer and the tools gateway's
log. ``--serve`` keeps it running so you can send your own requests (the printed curl line).

Real: the agent reads its settings from the environment (AGENT_NAME, TOOLS_GATEWAY_URL,
TOKEN_ISSUER, TOKEN_CLIENT_ID, GROUPS, ...: agent/contract.py; GROUPS is the deployed groups
document's location, as the runtime's environment has it, where its groups and prompt are) and calls Bedrock,
AppConfig, the tools gateway and AgentCore Memory for real; AGENT_DEV_TOKEN is the caller's access
token (e.g. from `make smoke`'s sign-in). The tools gateway grants tools only to a token that comes
with the AI gateway's passage for it (lambdas/shared/passage.py): with PASSAGE_KEY_ID (the identity
stack's passage key ARN) and credentials that may call kms:GenerateMac on it, the request carries
one, as the AI gateway's would; without, the agent runs with no tools.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "lambdas"), str(ROOT)]

import boto3  # noqa: E402
import jwt  # noqa: E402
import urllib3  # noqa: E402
from botocore.exceptions import NoRegionError  # noqa: E402
from botocore.stub import ANY, Stubber  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from agent.app import GatewayTools, Service, create_app, service_from_environ  # noqa: E402
from agent.contract import AgentGroups, GroupModels, Settings  # noqa: E402
from shared.contract import SettingsError  # noqa: E402
from shared.headers import AGENT_SESSION_HEADER, CALLER_TOKEN_HEADER, PASSAGE_HEADER  # noqa: E402
from shared.passage import PassageIssuer  # noqa: E402
from shared.runtime_config import ConfigLocation, DocumentReader  # noqa: E402
from shared.tokens import TokenVerifier  # noqa: E402
from tests.lambdas.bedrock_fakes import converse_answer, tool_use  # noqa: E402
from tests.lambdas.loopback import QuietHandler, loopback, serve_asgi  # noqa: E402
from tests.lambdas.tools_gateway_fake import FIND_ORDERS, tools_gateway  # noqa: E402

MODEL = "amazon.nova-pro-v1:0"
CLIENT_ID = "agent-dev"
SESSION = "agent-dev-session-0000000000000000000000"
PROMPT = "Where is my last order? My e-mail is ada@example.com."


@contextmanager
def stand_in_pool() -> Iterator[tuple[str, rsa.RSAPrivateKey]]:
    """A signing key and its JWKS on loopback, standing in for the Cognito pool."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "dev", "alg": "RS256", "use": "sig"}]}).encode()

    class Jwks(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server names it
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

    with loopback(Jwks) as url:
        yield f"{url}/local_pool", key


def scripted_bedrock() -> tuple[Any, Stubber]:
    """A Bedrock client answering from a script: a tool call, then an answer from its result."""
    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")  # noqa: S106
    stubber = Stubber(client)
    for content, stop in (
        (
            [tool_use(FIND_ORDERS.name, {"customer_email": "{EMAIL}"})],
            "tool_use",
        ),
        ([{"text": "Your order O-1 has shipped."}], "end_turn"),
    ):
        stubber.add_response(
            "converse",
            converse_answer(content, stop, input_tokens=120, output_tokens=25),
            {"modelId": MODEL, "messages": ANY, "system": ANY, "toolConfig": ANY, "inferenceConfig": ANY,
             "requestMetadata": ANY},
        )  # fmt: skip
    stubber.activate()
    return client, stubber


def invoke(base: str, token: str, prompt: str, passage: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", CALLER_TOKEN_HEADER: token, AGENT_SESSION_HEADER: SESSION}
    response = urllib3.PoolManager().request(
        "POST",
        f"{base}/invocations",
        body=json.dumps({"prompt": prompt}).encode(),
        headers=headers | ({PASSAGE_HEADER: passage} if passage else {}),
        timeout=urllib3.Timeout(total=180),
    )
    return response.status, json.loads(response.data)


def stubbed(prompt: str, serve: bool) -> int:
    with ExitStack() as stack:
        issuer, key = stack.enter_context(stand_in_pool())
        tools_url, fake = stack.enter_context(tools_gateway())
        fake.results[FIND_ORDERS.name] = {"records": [{"order_id": "O-1", "status": "shipped"}]}
        bedrock, _ = scripted_bedrock()
        # The groups document as AppConfig would serve it, from a local fetch.
        groups = AgentGroups(
            agents={"agent_dev": {"customer-gold": GroupModels(allowed=(MODEL,), default=MODEL)}},
            prompts={"agent_dev": "You help customers with their orders."},
        )
        location = ConfigLocation(application="local", environment="local", profile="groups", environment_name="agents")
        settings = Settings(
            agent_name="agent_dev",
            tools_gateway_url=tools_url,
            token_issuer=issuer,
            token_client_id=CLIENT_ID,
            groups=location,
        )
        service = Service(
            settings,
            bedrock,
            TokenVerifier(issuer=issuer, client_id=CLIENT_ID),
            GatewayTools(tools_url),
            DocumentReader(location, AgentGroups, fetch=lambda _: groups.model_dump_json()),
        )
        base = stack.enter_context(serve_asgi(create_app(lambda: service)))
        now = int(time.time())
        claims = {"sub": "dev-user", "iss": issuer, "token_use": "access", "client_id": CLIENT_ID, "iat": now,
                  "exp": now + 3600, "gateway_group": "customer-gold"}  # fmt: skip
        token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "dev"})
        print(f"agent on {base} (BedrockAgentCoreApp), tools gateway on {tools_url}, Bedrock scripted\n")
        print(f"> POST /invocations {json.dumps({'prompt': prompt})}")
        status, answer = invoke(base, token, prompt)
        print(f"< {status} {json.dumps(answer, indent=2)}\n")
        print("tools gateway saw:", ", ".join(fake.calls()))
        if serve:
            print(f"\nserving; try:\n  curl -s {base}/invocations -H 'Content-Type: application/json' "
                  f"-H '{CALLER_TOKEN_HEADER}: {token}' -H '{AGENT_SESSION_HEADER}: {SESSION}' "
                  "-d '{\"prompt\": \"hi\"}'\n(the script has no more model answers: Bedrock is stubbed)")  # fmt: skip
            threading.Event().wait()
        return 0 if status == 200 else 1


def real(prompt: str) -> int:
    token = os.environ.get("AGENT_DEV_TOKEN")
    if not token:
        print("AGENT_DEV_TOKEN: the caller's access token is required with REAL=1", file=sys.stderr)
        return 2
    # Built before serving (the runtime builds it at the first request): settings that are missing
    # or malformed are then one line naming them, not a 500 and a logged stack.
    try:
        service = service_from_environ()
    except SettingsError as error:
        print(f"the agent's settings (agent/contract.py), from the environment with REAL=1: {error}", file=sys.stderr)
        return 2
    except NoRegionError:
        print("AWS_REGION: the region of the deployed agent is required with REAL=1", file=sys.stderr)
        return 2
    key = os.environ.get("PASSAGE_KEY_ID")
    passage = PassageIssuer(lambda: boto3.client("kms"), key)(token) if key else None
    if passage is None:
        print("PASSAGE_KEY_ID not set: the tools gateway will give the agent no tools", file=sys.stderr)
    with serve_asgi(create_app(lambda: service)) as base:
        status, answer = invoke(base, token, prompt, passage)
    print(f"< {status} {json.dumps(answer, indent=2)}")
    return 0 if status == 200 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", action="store_true", help="real AWS (settings from the environment)")
    parser.add_argument("--serve", action="store_true", help="keep serving after the sample request (stubbed)")
    parser.add_argument("--prompt", default=PROMPT)
    args = parser.parse_args()
    return real(args.prompt) if args.real else stubbed(args.prompt, args.serve)


if __name__ == "__main__":
    sys.exit(main())
