"""The ingestion pipeline and Macie in the knowledge stack: event patterns, queues and DLQs,
timeouts, encryption, least-privilege roles, alarms, connectors, and the foundation's switches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ingestion.contract import DIRECT_PREFIX, LOST_RECORDS_METRIC, MACIE_QUARANTINE_PREFIX, REFUSED_EVENTS_METRIC
from stacks.config import load_config
from stacks.production.ingestion import OCR_ACTIONS
from stacks.production.macie import severities_from
from stacks.shared.naming import generation
from tests.conftest import ROOT
from tests.infra import iam_coverage
from tests.infra.cfn import name_of, only, props, render, resources, role_permissions, runtime_document, trust
from tests.infra.conftest import Assembly, Synthesizer

KB = "AWS::Bedrock::KnowledgeBase"


def production(cdk_context: dict[str, Any]) -> Any:
    return load_config(cdk_context).production


def test_every_new_landing_object_goes_to_the_queue(knowledge: dict[str, Any]) -> None:
    landing = props(knowledge, "AWS::S3::Bucket", "IngestionLanding")
    assert landing["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    assert landing["VersioningConfiguration"] == {"Status": "Enabled"}
    rule = props(knowledge, "AWS::Events::Rule", "IngestionObjectCreated")
    assert render(rule["EventPattern"]) == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": ["<IngestionLanding>"]}},
    }
    assert [render(t["Arn"]) for t in rule["Targets"]] == ["<IngestionDocuments.Arn>"]
    # An event EventBridge cannot deliver (past its retries) is dead-lettered, not dropped: its
    # object would sit in landing with no record. One it cannot dead-letter either alarms.
    ((target,),) = [rule["Targets"]]
    assert render(target["DeadLetterConfig"]["Arn"]) == "<IngestionDeadLetters.Arn>"
    lost = props(knowledge, "AWS::CloudWatch::Alarm", "IngestionObjectEventsLost")
    assert (lost["Namespace"], lost["MetricName"]) == ("AWS/Events", "InvocationsFailedToBeSentToDlq")
    assert render(lost["Dimensions"]) == [{"Name": "RuleName", "Value": "<IngestionObjectCreated>"}]
    assert (lost["Threshold"], lost["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert render(lost["AlarmActions"]) == ["<IngestionAlarms>"]


def test_the_queue_has_a_dlq_redrive_count_and_six_times_the_processor_timeout(
    knowledge: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    settings = production(cdk_context).ingestion
    queue = props(knowledge, "AWS::SQS::Queue", "IngestionDocuments")
    assert render(queue["RedrivePolicy"]) == {
        "deadLetterTargetArn": "<IngestionDeadLetters.Arn>",
        "maxReceiveCount": settings.max_receive_count,
    }
    function = props(knowledge, "AWS::Lambda::Function", "IngestionProcessor")
    assert function["Timeout"] == settings.processor_timeout_seconds
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    for name in ("IngestionDocuments", "IngestionDeadLetters"):
        assert "Fn::GetStackOutput" in props(knowledge, "AWS::SQS::Queue", name)["KmsMasterKeyId"]
    assert props(knowledge, "AWS::SQS::Queue", "IngestionDeadLetters")["MessageRetentionPeriod"] == 14 * 24 * 3600
    mapping = props(knowledge, "AWS::Lambda::EventSourceMapping")
    assert (mapping["BatchSize"], mapping["FunctionResponseTypes"]) == (
        settings.batch_size,
        ["ReportBatchItemFailures"],
    )
    assert render(mapping["EventSourceArn"]) == "<IngestionDocuments.Arn>"


def test_the_dlq_is_alarmed_on_depth_and_age(knowledge: dict[str, Any], cdk_context: dict[str, Any]) -> None:
    settings = production(cdk_context).ingestion
    alarms = {
        a["Properties"]["MetricName"]: a["Properties"]
        for name, a in resources(knowledge, "AWS::CloudWatch::Alarm").items()
        if a["Properties"].get("Namespace") == "AWS/SQS" and name.startswith("IngestionDeadLetters")
    }
    assert alarms["ApproximateNumberOfMessagesVisible"]["Threshold"] == 1
    assert alarms["ApproximateAgeOfOldestMessage"]["Threshold"] == settings.dlq_age_alarm_minutes * 60
    for alarm in alarms.values():
        assert render(alarm["Dimensions"]) == [{"Name": "QueueName", "Value": "<IngestionDeadLetters.QueueName>"}]
        assert render(alarm["AlarmActions"]) == ["<IngestionAlarms>"]
    emails = {
        s["Properties"]["Endpoint"]
        for s in resources(knowledge, "AWS::SNS::Subscription").values()
        if render(s["Properties"]["TopicArn"]) == "<IngestionAlarms>"
    }
    assert emails == set(settings.alarm_emails)


def test_the_processor_gets_its_config_and_nothing_more_than_its_job(
    knowledge: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    env = props(knowledge, "AWS::Lambda::Function", "IngestionProcessor")["Environment"]["Variables"]
    assert json.loads(env["CLASSIFICATION_POLICIES"]) == {
        c: p.on_pii for c, p in config.ingestion.classifications.items()
    }
    # Each classification's readers: the groups that may retrieve it, in the config's order (a
    # runtime document: it grows with the groups; the environment says where to read it).
    readers, _ = runtime_document(knowledge, "ingestion-classification-readers")
    assert readers == {
        "classification_readers": {
            c: [name for name, group in config.groups.items() if c in group.data_classifications]
            for c in config.ingestion.classifications
        }
    }
    assert json.loads(render(env["CLASSIFICATION_READERS"]))["environment_name"] == "ingestion"
    assert json.loads(env["DOCUMENT_FORMATS"]) == list(config.ingestion.formats)
    assert render(env["CUSTOM_DATA_SOURCE_ID"]) == "<KnowledgeBaseDirectSource.DataSourceId>"
    permissions = role_permissions(knowledge, "IngestionProcessorRole")
    allowed = {a for a, _ in permissions}
    assert {"s3:GetObject", "s3:DeleteObjectVersion", "comprehend:DetectPiiEntities"} <= allowed
    assert {("bedrock:IngestKnowledgeBaseDocuments", f"<{name_of(knowledge, KB)}.KnowledgeBaseArn>")} <= permissions
    writes = {r for a, r in permissions if a == "s3:PutObject"}
    assert writes == {"<IngestionQuarantine.Arn>/*", "<Curated.Arn>/curated/*", "<Curated.Arn>/direct/*"}
    assert not [a for a in allowed if a.endswith("*") or a in ("s3:DeleteBucket", "dynamodb:DeleteTable")]
    assert not [r for a, r in permissions if a.startswith("s3:") and r.endswith("Curated.Arn>/*")]
    # No listing of the curated bucket, nor of any bucket's versions: the processor lists nothing.
    # ListBucket on landing only, so a missing object or a delete marker answers 404, not 403.
    assert not {a for a, r in permissions if r == "<Curated.Arn>"}
    assert {(a, r) for a, r in permissions if a.startswith("s3:List")} == {("s3:ListBucket", "<IngestionLanding.Arn>")}
    # Its quarantine copies are undone by their own version: a delete without one, in the versioned
    # bucket, would leave the unmasked copy readable behind a delete marker.
    assert {a for a, r in permissions if r == "<IngestionQuarantine.Arn>/*"} == {
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:DeleteObjectVersion",
    }
    assert not {a for a, r in permissions if a == "dynamodb:BatchWriteItem"}
    # Its dead letters, and its own queue: a document deferred on its message's last receive is
    # sent again (QUEUE_URL); the pull connector only dead-letters.
    assert {r for a, r in permissions if a == "sqs:SendMessage"} == {
        "<IngestionDeadLetters.Arn>",
        "<IngestionDocuments.Arn>",
    }
    assert render(env["QUEUE_URL"]) == "<IngestionDocuments>"
    pull = role_permissions(knowledge, "IngestionPullKbArticlesRole")
    assert {r for a, r in pull if a == "sqs:SendMessage"} == {"<IngestionDeadLetters.Arn>"}


def test_the_registry_is_kept_encrypted_and_recoverable(knowledge: dict[str, Any]) -> None:
    _, table = only(knowledge, "AWS::DynamoDB::GlobalTable", "IngestionRegistry")
    assert table["DeletionPolicy"] == "Retain"
    properties = table["Properties"]
    assert [k["AttributeName"] for k in properties["KeySchema"]] == ["pk", "sk"]
    assert properties["SSESpecification"]["SSEType"] == "KMS"
    replica = properties["Replicas"][0]
    assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert replica["DeletionProtectionEnabled"] is True
    idempotency = props(knowledge, "AWS::DynamoDB::GlobalTable", "IngestionIdempotency")
    assert idempotency["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


def test_bulk_documents_sync_on_a_schedule(knowledge: dict[str, Any], cdk_context: dict[str, Any]) -> None:
    schedule = props(knowledge, "AWS::Scheduler::Schedule")
    assert schedule["ScheduleExpression"] == f"rate({production(cdk_context).ingestion.bulk_sync_minutes} minutes)"
    target = schedule["Target"]
    assert target["Arn"]["Fn::Join"][1][-1].endswith(":aws-sdk:bedrockagent:startIngestionJob")
    assert render(target["Input"]).startswith('{"KnowledgeBaseId":"')
    assert role_permissions(knowledge, "IngestionBulkSyncRole") == {
        ("bedrock:StartIngestionJob", f"<{name_of(knowledge, KB)}.KnowledgeBaseArn>")
    }


def test_the_kb_has_an_s3_and_a_direct_ingestion_source(knowledge: dict[str, Any]) -> None:
    direct = props(knowledge, "AWS::Bedrock::DataSource", "KnowledgeBaseDirectSource")
    assert direct["DataSourceConfiguration"] == {"Type": "CUSTOM"}
    assert direct["DataDeletionPolicy"] == "DELETE"


def test_each_push_sources_path_is_its_callers_alone(knowledge: dict[str, Any], cdk_context: dict[str, Any]) -> None:
    """The API's resource policy allows each source's path to its configured roles (another
    account's too) and denies it to every other principal, whatever their own IAM policies say;
    a role name is a role of the tier's account, as aws:PrincipalArn holds it."""
    push = production(cdk_context).connectors.push
    policy = render(props(knowledge, "AWS::ApiGateway::RestApi", "IngestionPushApi")["Policy"])
    expected = []
    for source, roles in push.callers.items():
        arns = [
            role if role.startswith("arn:") else f"arn:<AWS::Partition>:iam::<AWS::AccountId>:role/{role}"
            for role in roles
        ]
        for effect, operator in (("Allow", "ArnEquals"), ("Deny", "ArnNotEquals")):
            expected.append(
                {
                    "Effect": effect,
                    "Principal": {"AWS": "*"},
                    "Action": "execute-api:Invoke",
                    "Resource": f"execute-api:/*/POST/v1/records/{source}",
                    "Condition": {operator: {"aws:PrincipalArn": arns}},
                }
            )
    assert policy["Statement"] == expected
    assert sorted(push.callers) == sorted(push.sources)  # no source left open


def test_push_records_need_iam_signatures_and_pull_runs_on_the_configured_schedule(
    knowledge: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    (method,) = [m["Properties"] for m in resources(knowledge, "AWS::ApiGateway::Method").values()]
    assert (method["HttpMethod"], method["AuthorizationType"]) == ("POST", "AWS_IAM")
    push_env = props(knowledge, "AWS::Lambda::Function", "IngestionPushConnector")["Environment"]["Variables"]
    assert json.loads(push_env["PUSH_SOURCES"]) == config.connectors.push.sources
    push_permissions = role_permissions(knowledge, "IngestionPushConnectorRole")
    assert {r for a, r in push_permissions if a == "s3:PutObject"} == {"<IngestionLanding.Arn>/realtime/*"}
    # HeadObject of its own sources' keys, for the change a landed object is (a conditional write
    # lands only a later one), and no listing of the bucket.
    assert {r for a, r in push_permissions if a == "s3:GetObject"} == {
        f"<IngestionLanding.Arn>/realtime/{source}/*" for source in config.connectors.push.sources
    }
    assert not {a for a, _ in push_permissions if a.startswith("s3:List")}
    assert render(push_env["REGISTRY_TABLE"]) == "<IngestionRegistry>"
    # Each record id's change landed last, in its sources' own registry partitions only.
    role_id, _ = only(knowledge, "AWS::IAM::Role", "IngestionPushConnectorRole")
    (statement,) = [
        s
        for policy in resources(knowledge, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"].get("Roles", [])
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if str(s["Action"]).startswith("dynamodb:")
    ]
    assert (statement["Action"], render(statement["Resource"])) == ("dynamodb:PutItem", "<IngestionRegistry.Arn>")
    assert statement["Condition"] == {
        "ForAllValues:StringEquals": {
            "dynamodb:LeadingKeys": [f"connector#{s}" for s in sorted(config.connectors.push.sources)]
        }
    }
    for name, source in config.connectors.pull.items():
        logical = "".join(part.title() for part in name.split("-"))
        rule = props(knowledge, "AWS::Events::Rule", f"IngestionPull{logical}Schedule")
        assert rule["ScheduleExpression"] == source.schedule
        (target,) = rule["Targets"]
        assert render(target["DeadLetterConfig"]["Arn"]) == "<IngestionDeadLetters.Arn>"
        assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
        permissions = role_permissions(knowledge, f"IngestionPull{logical}Role")
        assert {r for a, r in permissions if a == "s3:PutObject"} == {f"<IngestionLanding.Arn>/realtime/{name}/*"}


def test_a_pull_source_capped_on_every_run_for_three_hours_alarms(
    knowledge: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    assert config.connectors.pull  # the sample config has a pull source to alarm on
    for name in config.connectors.pull:
        logical = "".join(part.title() for part in name.split("-"))
        alarm = props(knowledge, "AWS::CloudWatch::Alarm", f"IngestionPull{logical}FallingBehind")
        environment = props(knowledge, "AWS::Lambda::Function", f"IngestionPull{logical}")["Environment"]["Variables"]
        namespace, service = environment["POWERTOOLS_METRICS_NAMESPACE"], environment["POWERTOOLS_SERVICE_NAME"]
        queries = {q["Id"]: q for q in alarm["Metrics"]}
        assert queries["expr_1"]["Expression"] == "IF(runs > 0, capped / runs, 0)"
        assert queries["expr_1"]["ReturnData"] is True
        for query_id, metric, statistic in (("capped", "RunsCapped", "Sum"), ("runs", "RecordsPulled", "SampleCount")):
            stat = queries[query_id]["MetricStat"]
            assert queries[query_id]["ReturnData"] is False
            assert (stat["Metric"]["MetricName"], stat["Stat"], stat["Period"]) == (metric, statistic, 3600)
            assert stat["Metric"]["Namespace"] == namespace
            # as the function's Powertools metrics write them: its service, and the source
            # (tests/lambdas/test_connector_resume.py checks what the handler writes)
            assert sorted(stat["Metric"]["Dimensions"], key=lambda d: d["Name"]) == [
                {"Name": "Source", "Value": name},
                {"Name": "service", "Value": service},
            ]
        assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["EvaluationPeriods"]) == (
            1,
            "GreaterThanOrEqualToThreshold",
            3,
        )
        assert alarm["TreatMissingData"] == "notBreaching"  # a source that runs less than hourly never breaches
        assert render(alarm["AlarmActions"]) == ["<IngestionAlarms>"]


def test_macie_discovers_with_the_configured_identifiers_and_schedule(
    knowledge: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    identifiers = {
        i["Properties"]["Name"]: i["Properties"]["Regex"]
        for i in resources(knowledge, "AWS::Macie::CustomDataIdentifier").values()
    }
    # Each name carries the identifier's generation: a changed pattern is a new identifier.
    assert identifiers == {
        f"genai-production-{n}-{generation(i.model_dump(mode='json'))}": i.regex
        for n, i in config.ingestion.custom_identifiers.items()
    }
    allow = props(knowledge, "AWS::Macie::AllowList")
    assert allow["Criteria"] == {"Regex": config.macie.allow_list_regex}
    job = json.loads(render(props(knowledge, "Custom::MacieClassificationJob")["Job"]))
    assert job["jobType"] == "SCHEDULED"
    assert job["scheduleFrequency"] == {"dailySchedule": {}}
    assert job["samplingPercentage"] == config.macie.sampling_percentage
    # No token in the template: each CloudFormation request makes its own (tests/infra/test_macie_job.py).
    assert "clientToken" not in job


def test_macie_findings_at_or_above_the_severity_reach_the_responder(
    knowledge: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    minimum = production(cdk_context).macie.min_severity
    rule = props(knowledge, "AWS::Events::Rule", "MacieFindingsRule")
    pattern = render(rule["EventPattern"])
    assert pattern["source"] == ["aws.macie"]
    assert pattern["detail"]["severity"] == {"description": severities_from(minimum)}
    assert severities_from("Medium") == ["Medium", "High"]
    names = pattern["detail"]["resourcesAffected"]["s3Bucket"]["name"]
    assert names[:2] == ["<IngestionLanding>", "<Curated>"]
    assert names[2]["Fn::GetStackOutput"]["StackName"] == "genai-production-foundation"  # the access-log archive
    (target,) = rule["Targets"]
    assert (
        render(target["DeadLetterConfig"]["Arn"]) == "<MacieFindingsDeadLetters.Arn>"
    )  # never redriven into the pipeline
    function = props(knowledge, "AWS::Lambda::Function", "MacieResponder")
    assert function["Handler"] == "ingestion.macie.lambda_handler"


@pytest.fixture(scope="module")
def opensearch(synthesize: Synthesizer) -> Assembly:
    return synthesize(tier="production", **{"blueprint.production.vector_store": "opensearch_serverless"})


def test_opensearch_serverless_is_the_larger_corpus_option(opensearch: Assembly, cdk_context: dict[str, Any]) -> None:
    template = opensearch.template("-production-knowledge")
    assert not resources(template, "AWS::S3Vectors::VectorBucket")
    collection = props(template, "AWS::OpenSearchServerless::Collection")
    assert (collection["Type"], collection["StandbyReplicas"]) == ("VECTORSEARCH", "ENABLED")
    policies = {p["Properties"]["Type"]: p["Properties"] for p in resources(template, "AWS::OpenSearchServerless::SecurityPolicy").values()}  # fmt: skip
    assert '"AWSOwnedKey":false' in json.dumps(policies["encryption"]["Policy"]).replace(" ", "").replace("\\", "")
    access = json.dumps(props(template, "AWS::OpenSearchServerless::AccessPolicy")["Policy"])
    assert "KnowledgeBaseRole" in access
    assert "Fn::Sub" in access  # the KB role and CloudFormation's role
    index = props(template, "AWS::OpenSearchServerless::Index")
    vector = index["Mappings"]["Properties"]["embedding"]
    assert (vector["Type"], vector["Dimension"]) == (
        "knn_vector",
        production(cdk_context).knowledge_base.embedding_dimensions,
    )
    _, kb = only(template, "AWS::Bedrock::KnowledgeBase")
    storage = kb["Properties"]["StorageConfiguration"]
    assert storage["Type"] == "OPENSEARCH_SERVERLESS"
    assert storage["OpensearchServerlessConfiguration"]["VectorIndexName"] == index["IndexName"]
    assert only(template, "AWS::OpenSearchServerless::Index")[0] in kb["DependsOn"]
    assert ("aoss:APIAccessAll", "<KnowledgeBaseCollection.Arn>") in role_permissions(template, "KnowledgeBaseRole")
    lint = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), "--config-file", str(ROOT / ".cfnlintrc.yaml"), "--",
         str(opensearch.outdir / "genai-production-knowledge.template.json")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert lint.returncode == 0, lint.stdout


OCR = {"blueprint.production.ingestion.ocr": "textract"}
OCR_TYPES = ("AWS::SNS::Topic", "AWS::SQS::Queue", "AWS::IAM::Role")


@pytest.fixture(scope="module")
def ocr_app(synthesize: Synthesizer) -> Assembly:
    """The app with ocr: textract (cdk-nag runs in the synth: it must stay clean)."""
    return synthesize(**OCR)


@pytest.fixture(scope="module")
def ocr_knowledge(ocr_app: Assembly) -> dict[str, Any]:
    return ocr_app.template("-production-knowledge")


def test_with_ocr_textract_every_call_the_processor_makes_is_allowed_textract_included(ocr_app: Assembly) -> None:
    """The IAM coverage check counts the Textract calls only where OCR is on: here they must be granted."""
    coverage = iam_coverage.check(ocr_app.templates, only="IngestionProcessor")
    assert coverage.findings == []
    assert {c.action for c in iam_coverage.calls_in("ingestion", "handler") if c.service == "textract"} == {
        "textract:StartDocumentTextDetection",
        "textract:GetDocumentTextDetection",
    }


def test_ocr_textract_notifies_an_encrypted_topic_that_feeds_a_queue_with_a_dlq_the_processor_reads(
    ocr_knowledge: dict[str, Any],
) -> None:
    topic = props(ocr_knowledge, "AWS::SNS::Topic", "IngestionOcrTopic")
    assert "Fn::GetStackOutput" in topic["KmsMasterKeyId"]  # the tier key, from the foundation
    queue = props(ocr_knowledge, "AWS::SQS::Queue", "IngestionOcrResults")
    assert queue["SqsManagedSseEnabled"] is True
    assert render(queue["RedrivePolicy"])["deadLetterTargetArn"] == "<IngestionOcrDeadLetters.Arn>"
    assert props(ocr_knowledge, "AWS::SQS::Queue", "IngestionOcrDeadLetters")["SqsManagedSseEnabled"] is True
    subscription = props(ocr_knowledge, "AWS::SNS::Subscription", "IngestionOcrResults")
    assert (subscription["Protocol"], subscription["RawMessageDelivery"]) == ("sqs", True)
    assert render(subscription["TopicArn"]) == "<IngestionOcrTopic>"
    mappings = [m["Properties"] for m in resources(ocr_knowledge, "AWS::Lambda::EventSourceMapping").values()]
    ocr_mapping = [m for m in mappings if render(m["EventSourceArn"]) == "<IngestionOcrResults.Arn>"]
    assert len(ocr_mapping) == 1
    assert render(ocr_mapping[0]["FunctionName"]) == "<IngestionProcessor>"
    environment = props(ocr_knowledge, "AWS::Lambda::Function", "IngestionProcessor")["Environment"]["Variables"]
    assert environment["OCR"] == "textract"
    assert render(environment["OCR_TOPIC_ARN"]) == "<IngestionOcrTopic>"
    assert render(environment["OCR_ROLE_ARN"]) == "<IngestionOcrPublisher.Arn>"


def test_ocr_textract_role_may_only_publish_to_its_topic_and_the_processor_may_start_and_read_jobs(
    ocr_knowledge: dict[str, Any],
) -> None:
    (statement,) = trust(ocr_knowledge, "IngestionOcrPublisher")
    assert statement["Principal"] == {"Service": "textract.amazonaws.com"}
    assert "aws:SourceAccount" in statement["Condition"]["StringEquals"]
    publisher = role_permissions(ocr_knowledge, "IngestionOcrPublisher")
    assert {a for a, _ in publisher} == {"sns:Publish", "kms:Decrypt", "kms:GenerateDataKey*"}
    assert {r for a, r in publisher if a == "sns:Publish"} == {"<IngestionOcrTopic>"}
    assert all("GetStackOutput" in r for a, r in publisher if a.startswith("kms:"))
    processor = role_permissions(ocr_knowledge, "IngestionProcessor")
    assert {
        ("textract:StartDocumentTextDetection", "*"),
        ("textract:GetDocumentTextDetection", "*"),
        ("iam:PassRole", "<IngestionOcrPublisher.Arn>"),
        ("s3:GetObject", "<IngestionLanding.Arn>/*"),
        ("s3:GetObjectVersion", "<IngestionLanding.Arn>/*"),
    } <= processor
    assert any(a == "kms:Decrypt" and "GetStackOutput" in r for a, r in processor)
    assert not [a for a, _ in processor if a.startswith("textract:") and a not in OCR_ACTIONS]


def test_with_ocr_off_there_is_no_topic_queue_role_or_grant_for_it(knowledge: dict[str, Any]) -> None:
    for type_ in OCR_TYPES:
        assert not [name for name in resources(knowledge, type_) if name.startswith("IngestionOcr")]
    processor = role_permissions(knowledge, "IngestionProcessor")
    assert not [a for a, _ in processor if a.startswith("textract:") or a == "iam:PassRole"]
    environment = props(knowledge, "AWS::Lambda::Function", "IngestionProcessor")["Environment"]["Variables"]
    assert not [name for name in environment if name.startswith("OCR")]


def test_a_pull_source_whose_runs_fail_with_none_finished_alarms(
    knowledge: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    """A failed run leaves no data behind, only a checkpoint that does not move. Failed attempts
    in 3 hours with no run finished alarm, whatever the schedule: a daily source's one run (all its
    retries) is enough; a failure among finished runs is not."""
    for name in production(cdk_context).connectors.pull:
        logical = "".join(part.title() for part in name.split("-"))
        alarm = props(knowledge, "AWS::CloudWatch::Alarm", f"IngestionPull{logical}Failing")
        environment = props(knowledge, "AWS::Lambda::Function", f"IngestionPull{logical}")["Environment"]["Variables"]
        queries = {q["Id"]: q for q in alarm["Metrics"]}
        assert queries["expr_1"]["Expression"] == "IF(FILL(runs, 0) == 0, FILL(errors, 0), 0)"
        errors, runs = queries["errors"]["MetricStat"], queries["runs"]["MetricStat"]
        assert (errors["Metric"]["Namespace"], errors["Metric"]["MetricName"], errors["Stat"]) == (
            "AWS/Lambda",
            "Errors",
            "Sum",
        )
        assert render(errors["Metric"]["Dimensions"]) == [
            {"Name": "FunctionName", "Value": f"<IngestionPull{logical}>"}
        ]
        # every finished run writes one RecordsPulled value, under its service and source
        assert (runs["Metric"]["Namespace"], runs["Metric"]["MetricName"], runs["Stat"]) == (
            environment["POWERTOOLS_METRICS_NAMESPACE"],
            "RecordsPulled",
            "SampleCount",
        )
        assert sorted(runs["Metric"]["Dimensions"], key=lambda d: d["Name"]) == [
            {"Name": "Source", "Value": name},
            {"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]},
        ]
        assert errors["Period"] == runs["Period"] == 3 * 3600
        assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["EvaluationPeriods"]) == (
            1,
            "GreaterThanOrEqualToThreshold",
            1,
        )
        assert alarm["TreatMissingData"] == "notBreaching"  # no runs and no errors: nothing to say
        assert render(alarm["AlarmActions"]) == ["<IngestionAlarms>"]


def test_a_pull_source_answering_in_a_shape_its_config_does_not_describe_alarms_at_once(
    knowledge: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    """The function counts a run whose answer is unusable (AnswersUnusable, under its service and
    source); one such run alarms within the hour, since a retry cannot fix a changed API."""
    for name in production(cdk_context).connectors.pull:
        logical = "".join(part.title() for part in name.split("-"))
        alarm = props(knowledge, "AWS::CloudWatch::Alarm", f"IngestionPull{logical}AnswersUnusable")
        environment = props(knowledge, "AWS::Lambda::Function", f"IngestionPull{logical}")["Environment"]["Variables"]
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"], alarm["Period"]) == (
            environment["POWERTOOLS_METRICS_NAMESPACE"],
            "AnswersUnusable",
            "Sum",
            3600,
        )
        assert sorted(alarm["Dimensions"], key=lambda d: d["Name"]) == [
            {"Name": "Source", "Value": name},
            {"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]},
        ]
        assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["EvaluationPeriods"]) == (
            1,
            "GreaterThanOrEqualToThreshold",
            1,
        )
        assert alarm["TreatMissingData"] == "notBreaching"
        assert render(alarm["AlarmActions"]) == ["<IngestionAlarms>"]


def test_a_finding_the_responder_fails_on_reaches_the_findings_dead_letter_queue(knowledge: dict[str, Any]) -> None:
    """EventBridge invokes the responder asynchronously: its target DLQ takes only what it could not
    deliver; what the function fails on is Lambda's, sent on after two retries, never dropped."""
    config = props(knowledge, "AWS::Lambda::EventInvokeConfig")
    assert render(config["FunctionName"]) == "<MacieResponder>"
    assert render(config["DestinationConfig"]) == {"OnFailure": {"Destination": "<MacieFindingsDeadLetters.Arn>"}}
    assert (config["MaximumRetryAttempts"], config["MaximumEventAgeInSeconds"]) == (2, 6 * 3600)
    permissions = role_permissions(knowledge, "MacieResponderRole")
    assert ("sqs:SendMessage", "<MacieFindingsDeadLetters.Arn>") in permissions
    # Lambda checks the role may send to the destination when the config is created: the config
    # names the function, which is created only after the role's policy that grants it.
    (function,) = [
        v for k, v in resources(knowledge, "AWS::Lambda::Function").items() if render({"Ref": k}) == "<MacieResponder>"
    ]
    policies = [
        resources(knowledge, "AWS::IAM::Policy")[name]
        for name in function.get("DependsOn", [])
        if name in resources(knowledge, "AWS::IAM::Policy")
    ]
    assert any("sqs:SendMessage" in json.dumps(policy["Properties"]["PolicyDocument"]) for policy in policies)


def test_the_macie_responder_may_take_out_any_document_and_write_quarantine_copies_under_its_prefix_only(
    knowledge: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    documents = production(cdk_context).knowledge_base.documents_prefix
    objects = ["<IngestionLanding.Arn>/*", f"<Curated.Arn>/{documents}*", f"<Curated.Arn>/{DIRECT_PREFIX}*"]
    taking = ("s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject", "s3:DeleteObjectVersion")
    permissions = role_permissions(knowledge, "MacieResponderRole")
    assert {(a, r) for a, r in permissions if a.startswith("s3:")} == {
        *((action, resource) for action in taking for resource in objects),
        # (listing, so that a document already gone is a 404)
        ("s3:ListBucket", "<IngestionLanding.Arn>"),
        ("s3:ListBucket", "<Curated.Arn>"),
        ("s3:PutObject", f"<IngestionQuarantine.Arn>/{MACIE_QUARANTINE_PREFIX}*"),
        # (a copy over 5 GiB goes in parts: its upload is aborted if a part fails)
        ("s3:AbortMultipartUpload", f"<IngestionQuarantine.Arn>/{MACIE_QUARANTINE_PREFIX}*"),
    }


@pytest.mark.parametrize(
    ("alarm_id", "metric"),
    [("IngestionRecordsLost", LOST_RECORDS_METRIC), ("IngestionEventsRefused", REFUSED_EVENTS_METRIC)],
)
def test_a_record_lost_or_an_event_that_is_no_sqs_batch_alarms(
    knowledge: dict[str, Any], alarm_id: str, metric: str
) -> None:
    alarm = props(knowledge, "AWS::CloudWatch::Alarm", alarm_id)
    environment = props(knowledge, "AWS::Lambda::Function", "IngestionProcessor")["Environment"]["Variables"]
    # as the processor's Powertools metrics write it (tests/lambdas/test_fuzz_events_ingestion_envelopes.py)
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == (
        environment["POWERTOOLS_METRICS_NAMESPACE"],
        metric,
        "Sum",
    )
    assert alarm["Dimensions"] == [{"Name": "service", "Value": environment["POWERTOOLS_SERVICE_NAME"]}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["TreatMissingData"]) == (
        1,
        "GreaterThanOrEqualToThreshold",
        "notBreaching",
    )
    assert render(alarm["AlarmActions"]) == ["<IngestionAlarms>"]
