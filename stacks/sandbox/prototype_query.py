"""The prototype query function (lambdas/prototype_query) behind an IAM-authorized Function URL,
with the workload's tuned prompt in a layer of its own."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import (
    Duration,
    ILocalBundling,
    RemovalPolicy,
    Stack,
    aws_iam as iam,
    aws_kms as kms,
    aws_lambda as lambda_,
)
from constructs import Construct

from prototype_query.contract import LAYERS_ROOT, PROMPT_FILE, Settings as QuerySettings, prompt_problem
from stacks.config import ConfigError, QueryConfig
from stacks.sandbox.kendra_search import KendraSearch
from stacks.shared.bedrock import grant_invoke, model_arns
from stacks.shared.bytecode import LAMBDAS_DIR
from stacks.shared.expect import present
from stacks.shared.knowledge_base import VectorKnowledgeBase
from stacks.shared.lambda_function import ARCHITECTURE, RUNTIME, BlueprintFunction, locally_bundled
from stacks.shared.nag import acknowledge, acknowledge_inline_policy, acknowledge_synchronous_function


@jsii.implements(ILocalBundling)
class PromptBundle:
    """The prompt layer's content: the prompt, UTF-8, as the one file ``PROMPT_FILE``
    (lambdas/prototype_query/contract.py says why a file and not a variable). Its asset hash is
    the digest of that file's path and bytes: a new prompt is a new layer version, the same one
    the same asset."""

    def __init__(self, prompt: str) -> None:
        self.content = prompt.encode("utf-8")
        self.asset_hash = hashlib.sha256(PROMPT_FILE.encode() + b"\0" + self.content).hexdigest()

    def try_bundle(self, output_dir: str, options: Any = None) -> bool:
        path = Path(output_dir, PROMPT_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.content)
        return True


def prompt_code(prompt: str) -> lambda_.Code:
    """The prompt layer's asset (PromptBundle), staged at synth without Docker (the source folder
    is only the asset's name: the bundle writes the layer's one file)."""
    return locally_bundled(LAMBDAS_DIR / "prototype_query", PromptBundle(prompt))


class PrototypeQuery(Construct):
    """Answers questions from the Knowledge Base or Kendra, with citations, as ``prompt`` (the
    workload's tuned ``generation.prompt``) instructs.

    The endpoint is a Function URL with AWS_IAM auth: callers sign requests with SigV4 and need
    ``lambda:InvokeFunctionUrl`` and ``lambda:InvokeFunction`` on the function. ``kendra`` None
    means Kendra is switched off and the function refuses ``"source": "kendra"`` with a 422.

    The prompt is the one file of a layer beside the dependency layer, ``prompt_layer`` (not an
    environment variable: lambdas/prototype_query/contract.py says why). It is RetrieveAndGenerate's
    prompt template and Converse's system prompt, before the rules every answer keeps; a prompt the
    function cannot send (longer than contract.MAX_PROMPT_CHARS, or holding a placeholder
    RetrieveAndGenerate fills in) is a ConfigError at synth.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: QueryConfig,
        prompt: str,
        knowledge_base: VectorKnowledgeBase,
        kendra: KendraSearch | None,
        metrics_namespace: str,
        log_retention_days: int,
        log_key: kms.IKey,
    ) -> None:
        super().__init__(scope, id)
        problem = prompt_problem(prompt)
        if problem is not None:
            raise ConfigError(f"{Stack.of(scope).stack_name}: the workload's generation.prompt {problem}")
        self.prompt_layer = lambda_.LayerVersion(
            self,
            "Prompt",
            code=prompt_code(prompt),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="The workload's tuned prompt (generation.prompt) for the prototype query function",
            removal_policy=RemovalPolicy.DESTROY,
        )
        model = model_arns(self, config.generation_model_id)
        self.function = BlueprintFunction(
            self,
            "Function",
            package="prototype_query",
            description="Sandbox prototype: answer a question with citations from the KB or Kendra",
            metrics_namespace=metrics_namespace,
            log_retention_days=log_retention_days,
            log_key=log_key,
            removal_policy=RemovalPolicy.DESTROY,
            memory_size=config.memory_mb,
            reserved_concurrent_executions=config.reserved_concurrency,
            timeout=Duration.seconds(config.timeout_seconds),
            layers=[self.prompt_layer],
            settings=QuerySettings(
                knowledge_base_id=knowledge_base.knowledge_base_id,
                generation_model_arn=model.invoke_arn,
                kendra_index_id=kendra.index_id if kendra else None,
                max_question_chars=config.max_question_chars,
                max_passages=config.max_passages,
                max_answer_tokens=config.max_answer_tokens,
                # One attempt's longest read: two attempts of one call fit in the function's
                # timeout; the function holds every attempt to the request's deadline besides.
                upstream_timeout_seconds=max(1, (config.timeout_seconds - 5) // 2),
                system_prompt_file=f"{LAYERS_ROOT}/{PROMPT_FILE}",
            ),
        )
        role = present(self.function.role, "the query function's role")  # made when none is given
        knowledge_base.grant_retrieve(role)
        grant_invoke(role, model)
        if kendra is not None:
            role.add_to_principal_policy(iam.PolicyStatement(actions=["kendra:Retrieve"], resources=[kendra.index_arn]))
        retrieve_and_generate = iam.Policy(
            self,
            "RetrieveAndGenerate",
            roles=[role],
            statements=[iam.PolicyStatement(actions=["bedrock:RetrieveAndGenerate"], resources=["*"])],
        )
        acknowledge(
            retrieve_and_generate,
            "AwsSolutions-IAM5[Resource::*]",
            "bedrock:RetrieveAndGenerate has no resource type in IAM; the KB it may read is held to "
            "this stack's by bedrock:Retrieve, which is scoped to the Knowledge Base ARN.",
        )

        acknowledge_inline_policy(retrieve_and_generate)
        acknowledge_synchronous_function(
            self.function,
            invoker="Its IAM-authorized Function URL",
            network="Calls only AWS service APIs over TLS and reaches no private network resource; a VPC would "
            "add NAT or endpoint cost to a throwaway prototype tier.",
            concurrency=None
            if config.reserved_concurrency is not None
            else "Reserved concurrency is off by config (query.reserved_concurrency): new sandbox accounts often "
            "have a concurrency quota too small to reserve from. Nothing caps spend; the tier's budget only "
            "alerts on it, by e-mail.",
        )

        self.url = self.function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)
