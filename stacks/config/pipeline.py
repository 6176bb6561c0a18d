"""The optional multi-account delivery pipeline (stacks/pipeline): CDK Pipelines on CodePipeline,
in a tooling account, deploying the sandbox tier and then, after a permissions-broadening check
and a manual approval, the production tier. Off by default."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from stacks.config.base import ConfigModel, KeyedError
from stacks.config.fields import AccountId, Emails, Meaning, Region

# A CodeConnections (formerly CodeStar Connections) connection to the repository's host.
ConnectionArn = Annotated[
    str,
    Field(pattern=r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:connection/[\w-]+$"),
    Meaning("a CodeConnections connection ARN such as arn:aws:codeconnections:us-east-1:111122223333:connection/abc"),
]
Repository = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$"),
    Meaning("owner/name of the repository, such as example-org/genai-platform"),
]
Branch = Annotated[
    str,
    Field(max_length=100, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$"),
    Meaning("a branch name such as main or release/2026"),
]
# The synth step's image: `make test` and `make synth` set up the project themselves (tools/
# lambda_python.sh downloads the Lambda runtime's CPython from a Debian archive): a Debian image
# with Python 3.11+; Node.js and npm are installed by the step.
ContainerImage = Annotated[
    str,
    Field(pattern=r"^[a-z0-9][a-z0-9._/-]{0,200}(:[A-Za-z0-9._-]{1,128})?(@sha256:[a-f0-9]{64})?$"),
    Meaning("a container image reference such as public.ecr.aws/docker/library/python:3.12-bookworm"),
]


class PipelineConfig(ConfigModel):
    """A CDK Pipelines pipeline in a tooling account that tests, synthesizes and deploys both tiers
    from the repository's branch: the sandbox tier, then the production tier after a permissions-
    broadening check and a manual approval. `make synth TIER=pipeline` synthesizes it; each tier's
    account must be set, and bootstrapped to trust the tooling account."""

    enabled: bool = Field(default=False, description="Build the pipeline (TIER=pipeline synthesizes it).")
    account: AccountId | None = Field(
        default=None, description="The tooling account the pipeline runs in (required when enabled)."
    )
    region: Region = Field(default="us-east-1", description="The tooling account's region for the pipeline.")
    connection_arn: ConnectionArn | None = Field(
        default=None,
        description="The CodeConnections connection to the repository's host (required when enabled; created "
        "and authorized in the console once).",
    )
    repository: Repository | None = Field(
        default=None, description="owner/name of the repository the pipeline builds (required when enabled)."
    )
    branch: Branch = Field(default="main", description="The branch whose pushes start the pipeline.")
    build_image: ContainerImage = Field(
        default="public.ecr.aws/docker/library/python:3.12-bookworm",
        description="The synth step's CodeBuild image: Debian with Python 3.11 or later (the step installs "
        "Node.js and npm; make sets up the rest).",
    )
    compute: Literal["MEDIUM", "LARGE"] = Field(
        default="MEDIUM",
        description="The synth step's CodeBuild compute type: it runs the whole test suite, which a SMALL "
        "machine (3 GB) is not sized for.",
    )
    approval_emails: Emails = Field(
        default=(),
        description="Who is told (SNS e-mail) when a production deploy waits for a person: broadened permissions "
        "to confirm.",
    )

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> PipelineConfig:
        if self.enabled:
            for key in ("account", "connection_arn", "repository"):
                if getattr(self, key) is None:
                    raise KeyedError((key,), "required when the pipeline is enabled", allowed="a value, not null")
        return self
