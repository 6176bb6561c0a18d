"""What matters in the production identity and gateway templates."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pydantic
import pytest

from ai_gateway.contract import MAX_MESSAGES, GatewayPolicy
from ai_gateway.jobs_contract import WORKER_MAX_EVENT_AGE_SECONDS, GatewayJobsSettings, SweeperSettings
from ai_gateway.models import ChatRequest, OutputRequest
from ai_gateway.openai_api import ChatCompletionRequest
from shared.contract import variable
from stacks.config import UsagePlanConfig, load_config
from stacks.production.gateway_keys import plan_id
from stacks.shared.lambda_function import HOUSE_VARIABLES
from tests.infra.cfn import only, props, render, resolved, resources, role_permissions, runtime_document
from tests.infra.conftest import STACK_SUFFIXES, Assembly

ACCOUNT = "<AWS::AccountId>"


def production(cdk_context: dict[str, Any]) -> Any:
    return load_config(cdk_context).production


def test_user_pool_has_strong_passwords_mfa_threat_protection_and_no_self_sign_up(
    identity: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context).identity
    pool = props(identity, "AWS::Cognito::UserPool")
    assert pool["MfaConfiguration"] == {"REQUIRED": "ON", "OPTIONAL": "OPTIONAL", "OFF": "OFF"}[config.mfa]
    assert pool["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]
    assert pool["UserPoolTier"] == "PLUS"
    assert pool["UserPoolAddOns"] == {"AdvancedSecurityMode": config.threat_protection.upper()}
    assert pool["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    policy = pool["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] == config.password_min_length
    assert all(policy[k] for k in ("RequireLowercase", "RequireUppercase", "RequireNumbers", "RequireSymbols"))
    assert pool["DeletionProtection"] == "ACTIVE"


def test_every_configured_group_exists_with_its_precedence(
    identity: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    groups = {
        g["Properties"]["GroupName"]: g["Properties"]["Precedence"]
        for g in resources(identity, "AWS::Cognito::UserPoolGroup").values()
    }
    assert groups == {name: group.precedence for name, group in production(cdk_context).groups.items()}


def test_pre_token_trigger_is_v2_and_knows_every_group(identity: dict[str, Any], cdk_context: dict[str, Any]) -> None:
    trigger = props(identity, "AWS::Cognito::UserPool")["LambdaConfig"]["PreTokenGenerationConfig"]
    assert render(trigger) == {"LambdaArn": "<PreTokenFunction.Arn>", "LambdaVersion": "V2_0"}
    # Its groups are a runtime document (AppConfig), its environment says only where to read it.
    document, _ = runtime_document(identity, "identity-gateway-groups")
    assert document == {
        "groups": {
            name: {"kind": group.kind, "precedence": group.precedence, "tier": group.tier}
            for name, group in production(cdk_context).groups.items()
        }
    }
    env = props(identity, "AWS::Lambda::Function", "PreTokenFunction")["Environment"]["Variables"]
    assert set(env) - HOUSE_VARIABLES == {"GATEWAY_GROUPS"}
    assert set(json.loads(render(env["GATEWAY_GROUPS"]))) == {
        "application",
        "environment",
        "profile",
        "environment_name",
    }


def test_one_usage_plan_per_set_of_limits_with_each_groups_key_in_its_plan(
    assembly: Assembly, gateway: dict[str, Any], gateway_keys: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    plans = {
        p["Properties"]["UsagePlanName"]: (logical, p["Properties"])
        for logical, p in resources(gateway_keys, "AWS::ApiGateway::UsagePlan").items()
    }
    expected = production(cdk_context).groups
    limits = {group.usage_plan for group in expected.values()}
    assert len(plans) == len(limits)  # plans do not grow with the groups, only with distinct limits
    links = {
        render(k["Properties"]["KeyId"]): render(k["Properties"]["UsagePlanId"])
        for k in resources(gateway_keys, "AWS::ApiGateway::UsagePlanKey").values()
    }
    keys = {
        render({"Ref": logical}): key for logical, key in resources(gateway_keys, "AWS::ApiGateway::ApiKey").items()
    }
    assert len(keys) == len(links) == len(expected)  # one key per group, each in exactly one plan
    # The keys stack holds them all: the gateway's size does not grow with the groups.
    for kind in ("ApiKey", "UsagePlan", "UsagePlanKey"):
        assert not resources(gateway, f"AWS::ApiGateway::{kind}")
    api, stage = (
        gateway_resource(assembly, only(gateway, kind)[0])
        for kind in ("AWS::ApiGateway::RestApi", "AWS::ApiGateway::Stage")
    )
    for name, group in expected.items():
        (key,) = [ref for ref, k in keys.items() if k["Properties"]["Name"] == f"genai-{name}"]
        (plan,) = [p for logical, p in plans.values() if links[key] == f"<{_strip_hash(logical)}>"]
        assert plan["Throttle"] == {
            "RateLimit": group.usage_plan.rate_limit,
            "BurstLimit": group.usage_plan.burst_limit,
        }
        assert plan["Quota"] == {"Limit": group.usage_plan.quota_limit, "Period": group.usage_plan.quota_period}
        # On the gateway's API and stage (the gateway stack's outputs).
        stages = [
            (resolved(s["ApiId"], assembly.templates), resolved(s["Stage"], assembly.templates))
            for s in plan["ApiStages"]
        ]
        assert stages == [(api, stage)]


@pytest.mark.parametrize(
    ("a", "b"),
    [(1000, 1000.0004), (0.1234561, 0.1234564), (0.00001, 0.000012), (2, 2.0000001)],
)
def test_distinct_limits_never_share_a_plan(a: float, b: float) -> None:
    """Two groups whose rates differ past six significant digits got one plan name, so the second
    ran under the first's throttle; a name is also letters and digits only (a logical id)."""
    first, second = (UsagePlanConfig(rate_limit=r, burst_limit=20, quota_limit=1000) for r in (a, b))
    assert plan_id(first) != plan_id(second)
    assert all(plan_id(limits).isalnum() for limits in (first, second))


def test_a_plain_rate_keeps_its_plan_name() -> None:
    """Rates written as ``:g`` writes them keep their names: a tier deployed before keeps its plans."""
    limits = UsagePlanConfig(rate_limit=50, burst_limit=100, quota_limit=10000, quota_period="DAY")
    assert plan_id(limits) == "50Rps100Burst10000PerDay"
    assert plan_id(limits.model_copy(update={"rate_limit": 2.5})) == "2p5Rps100Burst10000PerDay"


def gateway_resource(assembly: Assembly, logical: str) -> str:
    """How ``resolved`` reads another stack's reference to the gateway's resource ``logical``."""
    gateway = next(name for name in assembly.templates if name.endswith(STACK_SUFFIXES["gateway"]))
    return f"<{gateway}:{_strip_hash(logical)}>"


def _strip_hash(logical: str) -> str:
    return str(render({"Ref": logical}))[1:-1]


def test_every_method_is_authorized_by_the_lambda_authorizer_and_needs_the_plan_key(
    gateway: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    methods = resources(gateway, "AWS::ApiGateway::Method")
    assert len(methods) == 7
    for method in methods.values():
        p = method["Properties"]
        assert (p["AuthorizationType"], render(p["AuthorizerId"]), p["ApiKeyRequired"]) == (
            "CUSTOM",
            "<Authorizer>",
            True,
        )
    api = props(gateway, "AWS::ApiGateway::RestApi")
    assert api["ApiKeySourceType"] == "AUTHORIZER"
    assert api["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    assert api["SecurityPolicy"] == production(cdk_context).api.tls_policy  # callers need TLS 1.2 or later
    authorizer = props(gateway, "AWS::ApiGateway::Authorizer")
    assert (authorizer["Type"], authorizer["IdentitySource"], authorizer["AuthorizerResultTtlInSeconds"]) == (
        "TOKEN",
        "method.request.header.Authorization",
        300,
    )
    validator = props(gateway, "AWS::ApiGateway::RequestValidator")
    assert validator["ValidateRequestBody"] is True


def _routes(gateway: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each method's properties by (HTTP method, full resource path)."""
    parts = resources(gateway, "AWS::ApiGateway::Resource")

    def path(ref: Any) -> str:
        logical = ref.get("Ref") if isinstance(ref, dict) else None
        if logical not in parts:  # the API's root resource
            return ""
        resource = parts[logical]["Properties"]
        return f"{path(resource['ParentId'])}/{resource['PathPart']}"

    return {
        (m["Properties"]["HttpMethod"], path(m["Properties"]["ResourceId"])): m["Properties"]
        for m in resources(gateway, "AWS::ApiGateway::Method").values()
    }


def _turns(count: int) -> list[dict[str, str]]:
    """A conversation of ``count`` alternating turns ending with the user's."""
    return [{"role": "user" if (count - 1 - i) % 2 == 0 else "assistant", "content": "hi"} for i in range(count)]


@pytest.mark.parametrize(
    ("route", "body_model", "body"),
    [
        (("POST", "/v1/chat"), ChatRequest, {"messages": _turns(MAX_MESSAGES)}),
        (("POST", "/v1/chat"), ChatRequest, {"messages": _turns(1), "model": None, "session_id": None}),
        (("POST", "/v1/chat"), ChatRequest, {"messages": _turns(MAX_MESSAGES + 1)}),  # both refuse
        (("POST", "/v1/chat"), ChatRequest, {"messages": []}),  # both refuse
        (("POST", "/v1/outputs/{type}"), OutputRequest, {"material": "x", "instructions": None, "model": None}),
        (("POST", "/v1/outputs/{type}"), OutputRequest, {"material": ""}),  # both refuse
        (("POST", "/v1/chat/completions"), ChatCompletionRequest, {"messages": _turns(3), "model": "m"}),
    ],
)
def test_the_apis_request_models_refuse_only_what_the_function_refuses(
    gateway: dict[str, Any], route: tuple[str, str], body_model: type[pydantic.BaseModel], body: dict[str, Any]
) -> None:
    """API Gateway's validator runs first: a body it refuses never reaches the function, so a
    model stricter than the function's (a lower message cap, a null it does not allow) refuses
    requests the docs promise."""
    reference = _routes(gateway)[route]["RequestModels"]["application/json"]["Ref"]
    schema = resources(gateway, "AWS::ApiGateway::Model")[reference]["Properties"]["Schema"]
    try:
        body_model.model_validate(body)
        function_accepts = True
    except pydantic.ValidationError:
        function_accepts = False
    api_accepts = jsonschema.Draft4Validator(schema).is_valid(body)
    assert api_accepts or not function_accepts, f"the API refuses a body the function accepts: {route}"


def test_the_openai_compatible_routes_sit_beside_the_gateways_own_and_validate_the_body(
    gateway: dict[str, Any],
) -> None:
    routes = _routes(gateway)
    assert set(routes) == {
        ("POST", "/v1/chat"),
        ("POST", "/v1/outputs/{type}"),
        ("GET", "/v1/usage"),
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
        ("GET", "/v1/models/{model}"),
        ("GET", "/v1/jobs/{id}"),
    }
    completions = routes[("POST", "/v1/chat/completions")]
    assert render(completions["RequestValidatorId"]) == "<ApiValidator>"
    assert render(completions["RequestModels"]) == {"application/json": "<ApiChatCompletionRequest>"}
    model = resources(gateway, "AWS::ApiGateway::Model")[completions["RequestModels"]["application/json"]["Ref"]]
    schema = model["Properties"]["Schema"]
    assert (schema["type"], schema["required"], schema["properties"]["messages"]["type"]) == (
        "object",
        ["messages"],
        "array",
    )
    # The function answers the rest in OpenAI's shape: the validator must not refuse what it would name.
    assert "minItems" not in schema["properties"]["messages"]
    assert "RequestModels" not in routes[("GET", "/v1/models")]
    # The models list: the gateway function's buffered integration, as the gateway's own routes.
    buffered = render(routes[("POST", "/v1/chat")]["Integration"]["Uri"])
    assert render(routes[("GET", "/v1/models")]["Integration"]["Uri"]) == buffered
    # One model (the SDK's models.retrieve): the same function, the model a required path parameter.
    one = routes[("GET", "/v1/models/{model}")]
    assert render(one["Integration"]["Uri"]) == buffered
    assert one["RequestParameters"] == {"method.request.path.model": True}
    # A job's status and answer: the buffered function too, its id a required path parameter.
    jobs = routes[("GET", "/v1/jobs/{id}")]
    assert render(jobs["Integration"]["Uri"]) == buffered
    assert jobs["RequestParameters"] == {"method.request.path.id": True}
    # Completions: the streaming function (its alias with api.stream_snap_start on, off by default:
    # tests/infra/test_snapstart.py) through InvokeWithResponseStream (streamed or not, every answer
    # of a STREAM integration is in the streaming format).
    integration = completions["Integration"]
    assert (integration["Type"], integration["ResponseTransferMode"]) == ("AWS_PROXY", "STREAM")
    assert render(integration["Uri"]) == (
        "arn:aws:apigateway:us-east-1:lambda:path/2021-11-15/functions/<GatewayStreamFunction.Arn>"
        "/response-streaming-invocations"
    )
    assert {"BUFFERED"} == {
        p["Integration"].get("ResponseTransferMode", "BUFFERED")
        for r, p in routes.items()
        if r[1] != "/v1/chat/completions"
    }


def test_the_streaming_function_runs_its_own_loop_with_the_gateways_permissions_and_streams_models(
    gateway: dict[str, Any],
) -> None:
    function = props(gateway, "AWS::Lambda::Function", "GatewayStreamFunction")
    buffered = props(gateway, "AWS::Lambda::Function", "GatewayFunction")
    assert function["Handler"] == buffered["Handler"] == "ai_gateway.handler.lambda_handler"  # the same asset
    variables = dict(function["Environment"]["Variables"])  # a copy: the template is the session's
    assert variables.pop("AWS_LAMBDA_EXEC_WRAPPER") == "/var/task/ai_gateway/stream_bootstrap"
    # Jobs are the buffered routes' alone: their settings, table and worker are not the stream's.
    jobs_variables = set(buffered["Environment"]["Variables"]) - set(variables)
    assert set(variables) <= set(buffered["Environment"]["Variables"])
    assert jobs_variables <= {variable(name) for name in GatewayJobsSettings.model_fields}
    assert {variable("jobs_table"), variable("worker_function")} <= jobs_variables
    streamed = role_permissions(gateway, "GatewayStreamFunctionRole")
    both = role_permissions(gateway, "GatewayFunctionRole")
    # The same grants on the same resources but the jobs' (each writes its own logs); ConverseStream
    # needs its own action on every model.
    own = {"<GatewayStreamFunctionLogs.Arn>": "<GatewayFunctionLogs.Arn>"}
    jobs = {(action, resource) for action, resource in both if resource.startswith(("<JobsTable", "<JobsWorker"))}
    assert {action for action, _ in jobs} == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                              "lambda:InvokeFunction"}  # fmt: skip
    assert {own.get(resource, resource) for _, resource in streamed} == {resource for _, resource in both - jobs}
    models = {resource for action, resource in streamed if action == "bedrock:InvokeModel"}
    assert models
    assert models == {resource for action, resource in streamed if action == "bedrock:InvokeModelWithResponseStream"}
    # Only the streaming function streams (the buffered one and the jobs' worker call Converse).
    assert not any(action == "bedrock:InvokeModelWithResponseStream" for action, _ in both)
    worker = role_permissions(gateway, "JobsWorkerRole")
    assert models <= {resource for action, resource in worker if action == "bedrock:InvokeModel"}
    assert not any(action == "bedrock:InvokeModelWithResponseStream" for action, _ in worker)


def test_stage_logs_access_and_execution_without_bodies_and_traces(gateway: dict[str, Any]) -> None:
    stage = props(gateway, "AWS::ApiGateway::Stage")
    assert stage["TracingEnabled"] is True
    (settings,) = stage["MethodSettings"]
    assert (settings["LoggingLevel"], settings["DataTraceEnabled"], settings["MetricsEnabled"]) == ("INFO", False, True)
    assert (
        render(stage["AccessLogSetting"]["DestinationArn"])
        == f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:<AccessLogs>"
    )


def test_waf_rate_rule_and_managed_rules_guard_the_stage(gateway: dict[str, Any], cdk_context: dict[str, Any]) -> None:
    acl = props(gateway, "AWS::WAFv2::WebACL")
    assert acl["Scope"] == "REGIONAL"
    rate = next(r for r in acl["Rules"] if r["Name"] == "RatePerIp")
    assert rate["Statement"]["RateBasedStatement"] == {
        "Limit": production(cdk_context).api.waf_rate_limit_per_5_minutes,
        "AggregateKeyType": "IP",
    }
    assert {r["Name"] for r in acl["Rules"]} == {
        "RatePerIp",
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
    }
    association = props(gateway, "AWS::WAFv2::WebACLAssociation")
    assert render(association["WebACLArn"]) == "<WebAcl.Arn>"
    logging = props(gateway, "AWS::WAFv2::LoggingConfiguration")
    assert logging["RedactedFields"] == [{"SingleHeader": {"Name": "authorization"}}]


def test_guardrail_is_built_from_config_and_pinned_by_version(
    gateway: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context).guardrail
    guardrail = props(gateway, "AWS::Bedrock::Guardrail")
    pii = {e["Type"]: e["Action"] for e in guardrail["SensitiveInformationPolicyConfig"]["PiiEntitiesConfig"]}
    assert pii == config.pii_entities
    filters = {
        f["Type"]: (f["InputStrength"], f["OutputStrength"]) for f in guardrail["ContentPolicyConfig"]["FiltersConfig"]
    }
    assert filters == {
        **{kind: (strength, strength) for kind, strength in config.content_filters.items()},
        "PROMPT_ATTACK": (config.prompt_attack_strength, "NONE"),  # prompt attacks are inputs only
    }
    assert [t["Name"] for t in guardrail["TopicPolicyConfig"]["TopicsConfig"]] == [t.name for t in config.denied_topics]
    grounding = {f["Type"]: f["Threshold"] for f in guardrail["ContextualGroundingPolicyConfig"]["FiltersConfig"]}
    assert grounding == {"GROUNDING": config.grounding_threshold, "RELEVANCE": config.relevance_threshold}
    env = render(props(gateway, "AWS::Lambda::Function", "GatewayFunction")["Environment"]["Variables"])
    assert (env["GUARDRAIL_ID"], env["GUARDRAIL_VERSION"]) == ("<Guardrail.GuardrailId>", "<GuardrailVersion.Version>")
    assert ("bedrock:ApplyGuardrail", "<Guardrail.GuardrailArn>") in role_permissions(gateway, "GatewayFunctionRole")


def test_ledger_is_encrypted_with_the_tier_key_and_recoverable(gateway: dict[str, Any]) -> None:
    _, table = only(gateway, "AWS::DynamoDB::GlobalTable", "Ledger")
    assert table["DeletionPolicy"] == "Retain"
    p = table["Properties"]
    assert p["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
    (replica,) = p["Replicas"]
    key = replica["SSESpecification"]["KMSMasterKeyId"]["Fn::GetStackOutput"]  # the foundation stack's key
    assert key["StackName"] == "genai-production-foundation"
    assert key["OutputName"].startswith("PublishOutputFnGetAttKey")
    assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert replica["DeletionProtectionEnabled"] is True
    # The billing export's index and the sweeper's (pending admissions by age), each with its keys.
    indexes = {i["IndexName"]: i for i in p["GlobalSecondaryIndexes"]}
    assert {name: [(k["AttributeName"], k["KeyType"]) for k in i["KeySchema"]] for name, i in indexes.items()} == {
        "gsi1": [("gsi1pk", "HASH"), ("gsi1sk", "RANGE")],
        "pending": [("pending", "HASH"), ("pending_at", "RANGE")],
    }
    assert indexes["pending"]["Projection"]["ProjectionType"] == "INCLUDE"  # not the items' whole text


def test_session_transcripts_are_encrypted_expiring_and_not_kept_past_expiry(gateway: dict[str, Any]) -> None:
    """The transcripts (ai_gateway.transcript): the tier key, TTL on the attribute the function
    writes, no point-in-time recovery (a restore would bring back expired conversations) and
    deleted with the stack (a cache of checks); the generating functions read and write them."""
    from ai_gateway import transcript

    _, table = only(gateway, "AWS::DynamoDB::GlobalTable", "Transcripts")
    assert table["DeletionPolicy"] == "Delete"
    p = table["Properties"]
    assert p["KeySchema"] == [{"AttributeName": transcript.KEY, "KeyType": "HASH"}]
    assert p["TimeToLiveSpecification"] == {"AttributeName": transcript.TTL_ATTRIBUTE, "Enabled": True}
    assert p["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS"}
    (replica,) = p["Replicas"]
    assert "Fn::GetStackOutput" in replica["SSESpecification"]["KMSMasterKeyId"]  # the tier key
    assert replica["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": False}
    for function in ("GatewayFunction", "GatewayStreamFunction"):
        env = render(props(gateway, "AWS::Lambda::Function", function)["Environment"]["Variables"])
        assert (env["TRANSCRIPT_TABLE"], env["TRANSCRIPT_TTL_SECONDS"]) == ("<Transcripts>", "86400")


def test_gateway_role_touches_only_its_table_guardrail_policy_and_models(
    gateway: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    permissions = role_permissions(gateway, "GatewayFunctionRole")
    tables = {(a, r) for a, r in permissions if a.startswith("dynamodb:")}
    assert tables == {
        *((f"dynamodb:{a}", "<Ledger.Arn>") for a in ("GetItem", "BatchGetItem", "PutItem", "UpdateItem")),
        *((f"dynamodb:{a}", "<JobsTable.Arn>") for a in ("GetItem", "PutItem", "UpdateItem")),
        *((f"dynamodb:{a}", "<Transcripts.Arn>") for a in ("GetItem", "PutItem")),
    }
    # It starts the jobs' worker, and no other function.
    assert {(a, r) for a, r in permissions if a.startswith("lambda:")} == {
        ("lambda:InvokeFunction", "<JobsWorker.Arn>")
    }
    models = {r for a, r in permissions if a == "bedrock:InvokeModel"}
    allowed = {model for group in config.groups.values() for model in group.models.allowed}
    assert models == {f"arn:aws:bedrock:{config.region}::foundation-model/{model}" for model in allowed}
    assert not [p for p in permissions if p[1] == "*" and not p[0].startswith("xray:")]


def test_the_sweeper_waits_out_the_longest_lived_admitting_function(gateway: dict[str, Any]) -> None:
    """A request is released only once older than any admitting function may still deliver: the
    buffered and streamed functions' timeouts, and a job's (submitted by the buffered function, its
    start window, the worker)."""
    timeouts = {
        name: props(gateway, "AWS::Lambda::Function", name)["Timeout"]
        for name in ("GatewayFunction", "GatewayStreamFunction", "JobsWorker")
    }
    variables = props(gateway, "AWS::Lambda::Function", "JobsSweeper")["Environment"]["Variables"]
    settings = SweeperSettings.from_environ({name: str(render(value)) for name, value in variables.items()})
    submitting = timeouts["GatewayFunction"]  # the streaming function submits no job
    assert sorted(settings.lifetimes_seconds) == sorted(
        [
            timeouts["GatewayFunction"],
            timeouts["GatewayStreamFunction"],
            submitting + WORKER_MAX_EVENT_AGE_SECONDS + timeouts["JobsWorker"],
        ]
    )
    assert settings.bound_seconds > max(timeouts.values())
    rule = props(gateway, "AWS::Events::Rule", "JobsSweeperSchedule")
    assert rule["ScheduleExpression"] == "rate(5 minutes)"
    assert [render(t["Arn"]) for t in rule["Targets"]] == ["<JobsSweeper.Arn>"]


def test_the_authorizer_knows_every_groups_key_and_reads_only_key_values(
    assembly: Assembly, gateway: dict[str, Any], gateway_keys: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    document, _ = runtime_document(gateway_keys, "gateway-keys-api-keys")
    keys = {
        render({"Ref": logical}): k["Properties"]["Name"]
        for logical, k in resources(gateway_keys, "AWS::ApiGateway::ApiKey").items()
    }
    assert {group: keys[key] for group, key in document["keys"].items()} == {g: f"genai-{g}" for g in config.groups}
    permissions = role_permissions(gateway, "AuthorizerFunctionRole")
    assert {r for a, r in permissions if a == "apigateway:GET"} == {f"arn:aws:apigateway:{config.region}::/apikeys/*"}
    assert {a for a, _ in permissions if a.startswith("apigateway:")} == {"apigateway:GET"}
    # The gateway's authorizer reads the keys stack's document by its environment's and profile's
    # names (the gateway stack names nothing of the keys stack); the read is granted there.
    assert not [a for a, _ in permissions if a.startswith("appconfig:")]
    variables = props(gateway, "AWS::Lambda::Function", "AuthorizerFunction")["Environment"]["Variables"]
    location = json.loads(resolved(variables["API_KEYS"], assembly.templates))
    (environment,) = resources(gateway_keys, "AWS::AppConfig::Environment").values()
    (profile,) = resources(gateway_keys, "AWS::AppConfig::ConfigurationProfile").values()
    assert (location["environment"], location["profile"], location["environment_name"]) == (
        environment["Properties"]["Name"],
        profile["Properties"]["Name"],
        environment["Properties"]["Name"],
    )
    assert "genai-production-gateway-keys" not in json.dumps(gateway)
    (grant,) = resources(gateway_keys, "AWS::IAM::Policy").values()
    (role,) = grant["Properties"]["Roles"]  # the authorizer's role, by its name (the gateway's output)
    assert resolved(role, assembly.templates) == gateway_resource(
        assembly, only(gateway, "AWS::IAM::Role", "AuthorizerFunctionRole")[0]
    )
    (statement,) = grant["Properties"]["PolicyDocument"]["Statement"]
    assert sorted(statement["Action"]) == ["appconfig:GetLatestConfiguration", "appconfig:StartConfigurationSession"]
    assert str(render(statement["Resource"])).endswith(
        "/environment/<RuntimeConfigEnvironment>/configuration/<RuntimeConfigapikeysConfigurationConfigurationProfile>"
    )


def test_the_policy_document_carries_prices_and_quotas(gateway: dict[str, Any], cdk_context: dict[str, Any]) -> None:
    config = production(cdk_context)
    policy, schema = runtime_document(gateway, "gateway-policy")
    prices = {name: (o["unit_price_usd"], o["units"], o["max_tokens"]) for name, o in policy["outputs"].items()}
    assert prices == {name: (o.unit_price_usd, o.units, o.max_tokens) for name, o in config.output_types.items()}
    assert {name: group["quotas"] for name, group in policy["groups"].items()} == {
        name: {output: {"limit": q.limit, "period": q.period} for output, q in group.output_quotas.items()}
        for name, group in config.groups.items()
    }
    assert schema == GatewayPolicy.validator_schema()
    env = props(gateway, "AWS::Lambda::Function", "GatewayFunction")["Environment"]["Variables"]
    assert not resources(gateway, "AWS::SSM::Parameter")
    assert "POLICY_PARAMETER" not in env
    assert "POLICY" in env


def test_waf_managed_body_rules_only_count_so_long_prompts_pass(gateway: dict[str, Any]) -> None:
    acl = props(gateway, "AWS::WAFv2::WebACL")
    common = next(r for r in acl["Rules"] if r["Name"] == "AWSManagedRulesCommonRuleSet")
    overrides = common["Statement"]["ManagedRuleGroupStatement"]["RuleActionOverrides"]
    assert {o["Name"]: o["ActionToUse"] for o in overrides} == {
        rule: {"Count": {}}
        for rule in [
            "SizeRestrictions_BODY",
            "CrossSiteScripting_BODY",
            "GenericLFI_BODY",
            "GenericRFI_BODY",
            "EC2MetaDataSSRF_BODY",
        ]
    }


def test_api_gateways_own_errors_are_json_with_a_correlation_id(gateway: dict[str, Any]) -> None:
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in resources(gateway, "AWS::ApiGateway::GatewayResponse").values()
    }
    assert set(responses) == {
        "MISSING_AUTHENTICATION_TOKEN",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
        "UNAUTHORIZED",
        "ACCESS_DENIED",
        "THROTTLED",
        "QUOTA_EXCEEDED",
        "BAD_REQUEST_BODY",
    }
    for kind, response in responses.items():
        # A throttled client is told when to retry (a static header value is quoted).
        retry = {"gatewayresponse.header.Retry-After": "'1'"} if kind == "THROTTLED" else {}
        assert response["ResponseParameters"] == {
            "gatewayresponse.header.X-Correlation-Id": "context.requestId",
            **retry,
        }
        # API Gateway substitutes $context.error.messageString with the message as a JSON string.
        template = response["ResponseTemplates"]["application/json"]
        body = json.loads(template.replace("$context.error.messageString", '"Invalid request body"'))
        assert set(body) == {"error", "message"}, kind
    assert '"error": "invalid_request"' in responses["BAD_REQUEST_BODY"]["ResponseTemplates"]["application/json"]
    # A path or method the API lacks: a 404 that says so (by default a 403 "Missing Authentication
    # Token", which the openai SDK raises as PermissionDeniedError); every other type keeps its status.
    assert {kind: r.get("StatusCode") for kind, r in responses.items() if r.get("StatusCode")} == {
        "MISSING_AUTHENTICATION_TOKEN": "404"
    }
    missing = json.loads(responses["MISSING_AUTHENTICATION_TOKEN"]["ResponseTemplates"]["application/json"])
    assert missing == {"error": "not_found", "message": "this API has no such path, or not with this method"}


def test_access_log_lines_name_the_caller_and_never_the_body(gateway: dict[str, Any]) -> None:
    fields = json.loads(props(gateway, "AWS::ApiGateway::Stage")["AccessLogSetting"]["Format"])
    assert (fields["principal"], fields["requestId"]) == ("$context.authorizer.principalId", "$context.requestId")
    assert not [v for v in fields.values() if "body" in v.lower() or "authorization" in v.lower()]
