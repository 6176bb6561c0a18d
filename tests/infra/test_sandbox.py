"""What matters in the sandbox template: encryption, TLS, IAM scope, KB storage, Kendra switch,
the workload's prompt."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, cast

import pytest
from aws_cdk import App, Stack

from prototype_query.contract import MAX_PROMPT_CHARS, PROMPT_FILE
from stacks.config import ConfigError, SandboxConfig, load_config
from stacks.sandbox.prototype_query import PromptBundle, PrototypeQuery
from stacks.shared.lambda_function import LAMBDA_ENVIRONMENT_BYTES, TOKEN_BYTES
from tests.infra import iam_coverage
from tests.infra.cfn import name_of, only, props, render, resources, role_permissions, trust
from tests.infra.conftest import Assembly, Synthesizer

KB = "AWS::Bedrock::KnowledgeBase"
INDEX = "AWS::S3Vectors::Index"

ACCOUNT = "<AWS::AccountId>"


@pytest.fixture(scope="module")
def config(cdk_context: dict[str, Any]) -> SandboxConfig:
    return load_config(cdk_context).sandbox_for("support")


def embedding_arn(config: SandboxConfig) -> str:
    return f"arn:aws:bedrock:{config.region}::foundation-model/{config.knowledge_base.embedding_model_id}"


def generation_arn(config: SandboxConfig) -> str:
    return f"arn:aws:bedrock:{config.region}::foundation-model/{config.query.generation_model_id}"


def test_documents_bucket_is_kms_encrypted_versioned_private_logged_and_disposable(sandbox: dict[str, Any]) -> None:
    name, bucket = only(sandbox, "AWS::S3::Bucket", "Documents")
    p = bucket["Properties"]
    (rule,) = p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert render(rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]) == "<Key.Arn>"
    assert rule["BucketKeyEnabled"] is True
    assert p["VersioningConfiguration"] == {"Status": "Enabled"}
    assert p["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"], True
    )
    assert render(p["LoggingConfiguration"]["DestinationBucketName"]) == "<AccessLogs>"
    assert bucket["DeletionPolicy"] == bucket["UpdateReplacePolicy"] == "Delete"
    emptied = [r for r in resources(sandbox, "Custom::S3AutoDeleteObjects").values()]
    assert {"Ref": name} in [r["Properties"]["BucketName"] for r in emptied]


def test_access_log_bucket_is_s3_encrypted_and_expires_logs(sandbox: dict[str, Any], config: SandboxConfig) -> None:
    p = props(sandbox, "AWS::S3::Bucket", "AccessLogs")
    (rule,) = p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (lifecycle,) = p["LifecycleConfiguration"]["Rules"]
    assert lifecycle["ExpirationInDays"] == config.log_retention_days


@pytest.mark.parametrize("stack", ["sandbox", "foundation"])
def test_every_bucket_refuses_plain_http(stack: str, request: pytest.FixtureRequest) -> None:
    template = request.getfixturevalue(stack)
    buckets = resources(template, "AWS::S3::Bucket")
    policies = {render(p["Properties"]["Bucket"]): p for p in resources(template, "AWS::S3::BucketPolicy").values()}
    assert buckets
    for name in buckets:
        statements = policies[f"<{name[:-8]}>"]["Properties"]["PolicyDocument"]["Statement"]
        deny = [s for s in statements if s["Effect"] == "Deny" and s["Action"] == "s3:*"]
        assert len(deny) == 1, name
        assert deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert deny[0]["Principal"] == {"AWS": "*"}
        assert sorted(render(deny[0]["Resource"])) == sorted([f"<{name[:-8]}.Arn>", f"<{name[:-8]}.Arn>/*"])


def test_key_rotates_and_lets_only_this_accounts_log_groups_and_vector_indexing_use_it(
    sandbox: dict[str, Any],
) -> None:
    p = props(sandbox, "AWS::KMS::Key")
    assert p["EnableKeyRotation"] is True
    services = {
        render(s["Principal"]["Service"]): render(s["Condition"])
        for s in p["KeyPolicy"]["Statement"]
        if "Service" in s["Principal"]
    }
    assert services == {
        "logs.us-east-1.amazonaws.com": {
            "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:*"}
        },
        "indexing.s3vectors.amazonaws.com": {
            "StringEquals": {"aws:SourceAccount": ACCOUNT},
            "ArnLike": {"aws:SourceArn": f"arn:aws:s3vectors:us-east-1:{ACCOUNT}:bucket/*"},
        },
    }


def test_knowledge_base_stores_vectors_in_an_encrypted_s3_vectors_index_sized_to_the_model(
    sandbox: dict[str, Any], config: SandboxConfig
) -> None:
    dimensions = config.knowledge_base.embedding_dimensions
    kb = props(sandbox, "AWS::Bedrock::KnowledgeBase")
    assert render(kb["StorageConfiguration"]) == {
        "Type": "S3_VECTORS",
        "S3VectorsConfiguration": {
            "VectorBucketArn": "<KnowledgeBaseVectorBucket.VectorBucketArn>",
            "IndexArn": f"<{name_of(sandbox, INDEX)}.IndexArn>",
        },
    }
    vector = kb["KnowledgeBaseConfiguration"]["VectorKnowledgeBaseConfiguration"]
    assert vector["EmbeddingModelArn"] == embedding_arn(config)
    assert vector["EmbeddingModelConfiguration"]["BedrockEmbeddingModelConfiguration"]["Dimensions"] == dimensions
    index = props(sandbox, "AWS::S3Vectors::Index")
    assert (index["Dimension"], index["DataType"], index["DistanceMetric"]) == (dimensions, "float32", "cosine")
    assert index["MetadataConfiguration"]["NonFilterableMetadataKeys"] == [
        "AMAZON_BEDROCK_TEXT",
        "AMAZON_BEDROCK_METADATA",
    ]
    encryption = render(props(sandbox, "AWS::S3Vectors::VectorBucket")["EncryptionConfiguration"])
    assert encryption == {"SseType": "aws:kms", "KmsKeyArn": "<Key.Arn>"}


def test_data_source_indexes_the_documents_prefix_with_configured_chunking(
    sandbox: dict[str, Any], config: SandboxConfig
) -> None:
    source = props(sandbox, "AWS::Bedrock::DataSource")
    assert render(source["DataSourceConfiguration"]) == {
        "Type": "S3",
        "S3Configuration": {
            "BucketArn": "<Documents.Arn>",
            "InclusionPrefixes": [config.knowledge_base.documents_prefix],
        },
    }
    assert source["VectorIngestionConfiguration"]["ChunkingConfiguration"] == {
        "ChunkingStrategy": "FIXED_SIZE",
        "FixedSizeChunkingConfiguration": {"MaxTokens": 300, "OverlapPercentage": 20},
    }
    assert source["DataDeletionPolicy"] == "DELETE"


def test_knowledge_base_role_reads_only_the_prefix_and_writes_only_its_index(
    sandbox: dict[str, Any], config: SandboxConfig
) -> None:
    assert role_permissions(sandbox, "KnowledgeBaseRole") == {
        ("bedrock:InvokeModel", embedding_arn(config)),
        ("s3:ListBucket", "<Documents.Arn>"),
        ("s3:GetObject", f"<Documents.Arn>/{config.knowledge_base.documents_prefix}*"),
        *{
            # every index of the KB's own vector bucket: a replaced KB's data source deletes its old vectors
            (f"s3vectors:{a}", "<KnowledgeBaseVectorBucket.VectorBucketArn>/index/*")
            for a in ("GetIndex", "QueryVectors", "PutVectors", "GetVectors", "DeleteVectors")
        },
        ("kms:Decrypt", "<Key.Arn>"),
        ("kms:GenerateDataKey", "<Key.Arn>"),
    }
    (statement,) = trust(sandbox, "KnowledgeBaseRole")
    assert statement["Principal"] == {"Service": "bedrock.amazonaws.com"}
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:bedrock:us-east-1:{ACCOUNT}:knowledge-base/*"},
    }


def test_knowledge_base_waits_for_its_role_policy(sandbox: dict[str, Any]) -> None:
    _, kb = only(sandbox, "AWS::Bedrock::KnowledgeBase")
    policy, _ = only(sandbox, "AWS::IAM::Policy", "KnowledgeBaseRoleDefaultPolicy")
    assert policy in kb["DependsOn"]


@pytest.fixture(scope="module")
def kendra_on(synthesize: Synthesizer) -> Assembly:
    """The sandbox with the tier's Kendra switch on (off by default: Kendra takes no new customers
    since 2026-07-30), an inference profile for generation and the budget scoped to the tier tag."""
    return synthesize(
        tier="sandbox",
        **{
            "blueprint.sandbox.kendra.enabled": "true",
            "blueprint.workloads.support.generation.model_id": "us.amazon.nova-lite-v1:0",
            "blueprint.sandbox.budget.scope": "tier",
        },
    )


@pytest.fixture(scope="module")
def with_kendra(kendra_on: Assembly) -> dict[str, Any]:
    return kendra_on.template("-sandbox-support")


def test_kendra_developer_index_crawls_the_prefix_with_the_template_connector(
    with_kendra: dict[str, Any], config: SandboxConfig
) -> None:
    index = props(with_kendra, "AWS::Kendra::Index")
    assert index["Edition"] == "DEVELOPER_EDITION"
    source = props(with_kendra, "AWS::Kendra::DataSource")
    assert source["Type"] == "TEMPLATE"
    assert source["Schedule"] == config.kendra.sync_schedule
    assert "S3Configuration" not in source["DataSourceConfiguration"]
    template = render(source["DataSourceConfiguration"]["TemplateConfiguration"]["Template"])
    assert template["type"] == "S3"
    assert template["connectionConfiguration"] == {"repositoryEndpointMetadata": {"BucketName": "<Documents>"}}
    assert template["additionalProperties"] == {"inclusionPrefixes": [config.knowledge_base.documents_prefix]}


def test_kendra_roles_are_scoped_to_the_index_and_the_prefix(
    with_kendra: dict[str, Any], config: SandboxConfig
) -> None:
    sync = {
        "BatchPutDocument",
        "BatchDeleteDocument",
        "PutPrincipalMapping",
        "DeletePrincipalMapping",
        "DescribePrincipalMapping",
        "ListGroupsOlderThanOrderingId",
    }
    assert role_permissions(with_kendra, "KendraDataSourceRole") == {
        ("s3:ListBucket", "<Documents.Arn>"),
        ("s3:GetObject", f"<Documents.Arn>/{config.knowledge_base.documents_prefix}*"),
        ("kms:Decrypt", "<Key.Arn>"),
        *{(f"kendra:{a}", "<KendraIndex.Arn>") for a in sync},
        *{(f"kendra:{a}", "<KendraIndex.Arn>/data-source/*") for a in sync},
    }
    logs = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/kendra/*"
    assert role_permissions(with_kendra, "KendraIndexRole") == {
        ("cloudwatch:PutMetricData", "*"),
        ("logs:DescribeLogGroups", "*"),
        ("logs:CreateLogGroup", logs),
        *{(f"logs:{a}", f"{logs}:log-stream:*") for a in ("DescribeLogStreams", "CreateLogStream", "PutLogEvents")},
    }
    for role in ("KendraDataSourceRole", "KendraIndexRole"):
        (statement,) = trust(with_kendra, role)
        assert statement["Principal"] == {"Service": "kendra.amazonaws.com"}
        assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}


def test_query_role_can_retrieve_generate_and_write_its_own_logs_only(
    sandbox: dict[str, Any], config: SandboxConfig
) -> None:
    assert role_permissions(sandbox, "QueryFunctionRole") == {
        ("bedrock:Retrieve", f"<{name_of(sandbox, KB)}.KnowledgeBaseArn>"),
        ("bedrock:RetrieveAndGenerate", "*"),
        ("bedrock:InvokeModel", generation_arn(config)),
        ("logs:CreateLogStream", "<QueryFunctionLogs.Arn>"),
        ("logs:PutLogEvents", "<QueryFunctionLogs.Arn>"),
        ("xray:PutTraceSegments", "*"),
        ("xray:PutTelemetryRecords", "*"),
    }
    role = only(sandbox, "AWS::IAM::Role", "QueryFunctionRole")[1]["Properties"]
    assert "ManagedPolicyArns" not in role


def test_query_function_has_the_house_defaults_and_an_iam_authorized_url(
    sandbox: dict[str, Any], config: SandboxConfig
) -> None:
    fn = props(sandbox, "AWS::Lambda::Function", "QueryFunction")
    assert (fn["Runtime"], fn["Architectures"]) == ("python3.14", ["arm64"])
    assert fn["Handler"] == "prototype_query.handler.lambda_handler"
    assert fn["TracingConfig"] == {"Mode": "Active"}
    assert render(fn["LoggingConfig"]) == {
        "LogFormat": "JSON",
        "ApplicationLogLevel": "INFO",
        "SystemLogLevel": "WARN",
        "LogGroup": "<QueryFunctionLogs>",
    }
    assert render(fn["Layers"]) == ["<DependencyLayer>", "<QueryPrompt>"]
    env = render(fn["Environment"]["Variables"])
    assert env["KNOWLEDGE_BASE_ID"] == f"<{name_of(sandbox, KB)}.KnowledgeBaseId>"
    assert env["GENERATION_MODEL_ARN"] == generation_arn(config)
    assert env["POWERTOOLS_SERVICE_NAME"] == "prototype_query"
    assert (fn["MemorySize"], fn["Timeout"]) == (config.query.memory_mb, config.query.timeout_seconds)
    # The longest upstream timeout with which two attempts and 5 s of our own work fit in the function's.
    upstream = int(env["UPSTREAM_TIMEOUT_SECONDS"])
    assert 2 * upstream + 5 <= fn["Timeout"] < 2 * (upstream + 1) + 5
    assert props(sandbox, "AWS::Lambda::Url")["AuthType"] == "AWS_IAM"
    logs = props(sandbox, "AWS::Logs::LogGroup", "QueryFunctionLogs")
    assert logs["RetentionInDays"] == config.log_retention_days
    assert render(logs["KmsKeyId"]) == "<Key.Arn>"


def test_query_function_reads_the_workloads_prompt_from_its_own_layer(
    sandbox: dict[str, Any], assembly: Assembly, cdk_context: dict[str, Any]
) -> None:
    """The workload's tuned generation.prompt, byte for byte, is the one file of the function's
    prompt layer, and its environment says where Lambda puts it (under /opt)."""
    prompt = load_config(cdk_context).workloads["support"].generation.prompt
    fn = props(sandbox, "AWS::Lambda::Function", "QueryFunction")
    layer_id, layer = only(sandbox, "AWS::Lambda::LayerVersion", "QueryPrompt")
    assert {"Ref": layer_id} in fn["Layers"]
    assert fn["Environment"]["Variables"]["SYSTEM_PROMPT_FILE"] == f"/opt/{PROMPT_FILE}"
    staged = assembly.outdir / layer["Metadata"]["aws:asset:path"]
    assert [p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()] == [PROMPT_FILE]
    assert (staged / PROMPT_FILE).read_bytes() == prompt.encode("utf-8")
    assert (layer["Properties"]["CompatibleRuntimes"], layer["Properties"]["CompatibleArchitectures"]) == (
        ["python3.14"],
        ["arm64"],
    )
    assert layer["DeletionPolicy"] == layer["UpdateReplacePolicy"] == "Delete"


def test_a_prompt_of_the_configs_longest_would_not_fit_the_functions_environment(sandbox: dict[str, Any]) -> None:
    """Why the prompt is a layer's file: Lambda holds 4 KB of variables, and what the function's
    already take (each deploy-time value counted at its least, as BlueprintFunction weighs it)
    leaves less than the 4,000 characters generation.prompt may have."""
    variables = props(sandbox, "AWS::Lambda::Function", "QueryFunction")["Environment"]["Variables"]
    taken = sum(
        len(name) + (len(value.encode()) if isinstance(value, str) else TOKEN_BYTES)
        for name, value in variables.items()
    )
    assert 400 < taken < 700  # (what lambdas/prototype_query/contract.py says: about 500 bytes)
    assert taken + len("SYSTEM_PROMPT") + 4000 > LAMBDA_ENVIRONMENT_BYTES


@pytest.mark.parametrize(
    ("prompt", "problem"),
    [
        (
            "p" * (MAX_PROMPT_CHARS + 1),
            f"is {MAX_PROMPT_CHARS + 1:,} characters; .* takes at most {MAX_PROMPT_CHARS:,}",
        ),
        ("Cite as $output_format_instructions$ says.", r"holds \$output_format_instructions\$"),
        (" ", "is blank"),
    ],
)
def test_a_prompt_the_function_cannot_send_fails_synth_naming_the_stack_and_key(
    prompt: str, problem: str, config: SandboxConfig
) -> None:
    """Refused before any resource is made (so the construct's other props are never read)."""
    stack = Stack(App(), "genai-sandbox-team")
    with pytest.raises(ConfigError, match=f"^genai-sandbox-team: the workload's generation.prompt {problem}"):
        PrototypeQuery(
            stack,
            "Query",
            config=config.query,
            prompt=prompt,
            knowledge_base=cast(Any, None),
            kendra=None,
            metrics_namespace="test",
            log_retention_days=1,
            log_key=cast(Any, None),
        )
    (query,) = stack.node.children
    assert not query.node.children


def test_the_prompt_layer_holds_the_prompt_as_written_and_its_hash_follows_it(tmp_path: Path) -> None:
    prompt = "Line one.\r\nLigne deux, très courte.\n"
    bundle = PromptBundle(prompt)
    assert bundle.try_bundle(str(tmp_path)) is True
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()] == [PROMPT_FILE]
    assert (tmp_path / PROMPT_FILE).read_bytes() == prompt.encode("utf-8")
    assert PromptBundle(prompt).asset_hash == bundle.asset_hash != PromptBundle(prompt.strip()).asset_hash


def test_budget_alerts_the_configured_addresses(sandbox: dict[str, Any], config: SandboxConfig) -> None:
    budget = props(sandbox, "AWS::Budgets::Budget")
    assert budget["Budget"]["BudgetLimit"] == {"Amount": config.budget.monthly_limit_usd, "Unit": "USD"}
    assert budget["Budget"]["TimeUnit"] == "MONTHLY"
    assert "CostFilters" not in budget["Budget"]
    alerts = {
        (n["Notification"]["NotificationType"], n["Notification"]["Threshold"])
        for n in budget["NotificationsWithSubscribers"]
    }
    assert alerts == {("ACTUAL", config.budget.alert_threshold_percent), ("FORECASTED", 100)}
    for n in budget["NotificationsWithSubscribers"]:
        assert n["Subscribers"] == [
            {"SubscriptionType": "EMAIL", "Address": address} for address in config.budget.alert_emails
        ]


def test_resources_carry_the_expiry_and_config_tags(sandbox: dict[str, Any], cdk_context: dict[str, Any]) -> None:
    config = load_config(cdk_context)
    tags = {t["Key"]: t["Value"] for t in props(sandbox, "AWS::S3::Bucket", "Documents")["Tags"]}
    assert tags["expires-on"] == str(config.sandbox_for("support").expires_on)
    assert tags["tier"] == "sandbox"
    assert config.tags
    assert tags.items() >= config.tags.items()


def test_outputs_give_a_user_what_they_need(sandbox: dict[str, Any]) -> None:
    outputs = {name: render(o["Value"]) for name, o in sandbox["Outputs"].items()}
    assert outputs["KnowledgeBaseId"] == f"<{name_of(sandbox, KB)}.KnowledgeBaseId>"
    assert outputs["DataSourceId"] == "<KnowledgeBaseDataSource.DataSourceId>"
    assert outputs["DocumentsBucketName"] == "<Documents>"
    assert outputs["QueryUrl"] == "<QueryFunctionFunctionUrl.FunctionUrl>"


def test_kendra_switched_on_gives_the_query_function_its_index_and_the_user_its_ids(
    with_kendra: dict[str, Any], kendra_on: Assembly
) -> None:
    assert ("kendra:Retrieve", "<KendraIndex.Arn>") in role_permissions(with_kendra, "QueryFunctionRole")
    fn = props(with_kendra, "AWS::Lambda::Function", "QueryFunction")
    assert render(fn["Environment"]["Variables"])["KENDRA_INDEX_ID"] == "<KendraIndex.Id>"
    outputs = {name: render(o["Value"]) for name, o in with_kendra["Outputs"].items()}
    assert (outputs["KendraIndexId"], outputs["KendraDataSourceId"]) == ("<KendraIndex.Id>", "<KendraDataSource.Id>")
    assert list(kendra_on.templates) == ["genai-sandbox-support"]  # tier=sandbox synthesizes one tier
    # Its Retrieve call is switched on by KENDRA_INDEX_ID, and the role allows it on the index.
    coverage = iam_coverage.check(kendra_on.templates)
    assert (coverage.unresolved, coverage.findings) == ([], [])
    revoked = copy.deepcopy(kendra_on.templates)
    for policy in resources(revoked["genai-sandbox-support"], "AWS::IAM::Policy").values():
        document = policy["Properties"]["PolicyDocument"]
        document["Statement"] = [s for s in document["Statement"] if "kendra:Retrieve" not in json.dumps(s["Action"])]
    findings = iam_coverage.check(revoked).findings
    assert [(f.call.action, f.resource) for f in findings] == [("kendra:Retrieve", "KENDRA_INDEX_ID")]


def test_kendra_is_off_by_default_without_a_resource_or_permission(sandbox: dict[str, Any]) -> None:
    """Kendra takes no new customers since 2026-07-30: an index in an account that never used it
    fails the sandbox's first deploy, so the tier's switch is off unless the account turns it on."""
    assert not [r for r in sandbox["Resources"].values() if r["Type"].startswith("AWS::Kendra::")]
    assert not [a for a, _ in role_permissions(sandbox, "QueryFunctionRole") if a.startswith("kendra:")]
    fn = props(sandbox, "AWS::Lambda::Function", "QueryFunction")
    assert "KENDRA_INDEX_ID" not in fn["Environment"]["Variables"]  # unset: the query function's Kendra is off
    assert not [name for name in sandbox["Outputs"] if name.startswith("Kendra")]


def test_inference_profile_grants_the_profile_and_its_model_in_every_region(with_kendra: dict[str, Any]) -> None:
    template = with_kendra
    profile = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.amazon.nova-lite-v1:0"
    model = {(a, r) for a, r in role_permissions(template, "QueryFunctionRole") if a.startswith("bedrock:")}
    assert model - {
        ("bedrock:Retrieve", f"<{name_of(template, KB)}.KnowledgeBaseArn>"),
        ("bedrock:RetrieveAndGenerate", "*"),
    } == {
        ("bedrock:InvokeModel", profile),
        ("bedrock:InvokeModel", "arn:aws:bedrock:*::foundation-model/amazon.nova-lite-v1:0"),
        ("bedrock:GetInferenceProfile", profile),
    }


def test_budget_can_be_scoped_to_the_tier_tag(with_kendra: dict[str, Any]) -> None:
    budget = props(with_kendra, "AWS::Budgets::Budget")
    assert budget["Budget"]["CostFilters"] == {"TagKeyValue": ["user:tier$sandbox"]}


def test_budget_scoped_to_the_workload_counts_the_tag_its_own_resources_carry(synthesize: Synthesizer) -> None:
    """Each workload's sandbox budget counts its own workload tag, the one on its resources, so two
    sandboxes' budgets do not alert on each other's spend (the tier tag counts them all)."""
    template = synthesize(tier="sandbox", **{"blueprint.sandbox.budget.scope": "workload"}).template("-sandbox-support")
    budget = props(template, "AWS::Budgets::Budget")
    assert budget["Budget"]["CostFilters"] == {"TagKeyValue": ["user:workload$support"]}
    documents = props(template, "AWS::S3::Bucket", "Documents")
    assert {"Key": "workload", "Value": "support"} in documents["Tags"]
