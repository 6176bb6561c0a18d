"""The prototype query function (lambdas/prototype_query) behind an IAM-authorized Function URL."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, aws_iam as iam, aws_kms as kms, aws_lambda as lambda_
from constructs import Construct

from prototype_query.contract import Settings as QuerySettings
from stacks.config import QueryConfig
from stacks.sandbox.kendra_search import KendraSearch
from stacks.shared.bedrock import grant_invoke, model_arns
from stacks.shared.expect import present
from stacks.shared.knowledge_base import VectorKnowledgeBase
from stacks.shared.lambda_function import BlueprintFunction
from stacks.shared.nag import acknowledge, acknowledge_inline_policy, acknowledge_synchronous_function


class PrototypeQuery(Construct):
    """Answers questions from the Knowledge Base or Kendra, with citations.

    The endpoint is a Function URL with AWS_IAM auth: callers sign requests with SigV4 and need
    ``lambda:InvokeFunctionUrl`` and ``lambda:InvokeFunction`` on the function. ``kendra`` None
    means Kendra is switched off and the function refuses ``"source": "kendra"`` with a 422.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: QueryConfig,
        knowledge_base: VectorKnowledgeBase,
        kendra: KendraSearch | None,
        metrics_namespace: str,
        log_retention_days: int,
        log_key: kms.IKey,
    ) -> None:
        super().__init__(scope, id)
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
            settings=QuerySettings(
                knowledge_base_id=knowledge_base.knowledge_base_id,
                generation_model_arn=model.invoke_arn,
                kendra_index_id=kendra.index_id if kendra else None,
                max_question_chars=config.max_question_chars,
                max_passages=config.max_passages,
                max_answer_tokens=config.max_answer_tokens,
                # Two attempts per AWS call must fit in the function's timeout.
                upstream_timeout_seconds=max(1, (config.timeout_seconds - 5) // 2),
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
            "have a concurrency quota too small to reserve from; spend is capped by the tier's budget alerts.",
        )

        self.url = self.function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)
