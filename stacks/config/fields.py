"""Field types the config models share: the values AWS accepts, each pattern explained in words.

A patterned string type carries a ``Meaning`` (lambdas/shared/meaning.py): a value that does not
match fails with "must be <meaning>", and the meaning goes into docs/configuration.md.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from shared.field_paths import FieldPath
from shared.landing import METADATA_VALUE
from shared.meaning import PATTERN_ERROR, Meaning

__all__ = ["PATTERN_ERROR", "FieldPath", "Meaning"]

# CloudWatch Logs accepts only these retention periods (days).
LogRetentionDays = Literal[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
]  # fmt: skip

# A Bedrock foundation-model id ("amazon.nova-lite-v1:0") or a cross-region inference profile id
# ("us.amazon.nova-lite-v1:0", "global.anthropic...").
MODEL_ID_PATTERN = r"^((us|eu|apac|us-gov|global)\.)?[a-z0-9-]+\.[a-zA-Z0-9.:_-]+$"
ModelId = Annotated[
    str,
    Field(pattern=MODEL_ID_PATTERN),
    Meaning(
        "a Bedrock model id such as anthropic.claude-3-haiku-20240307-v1:0, optionally after an inference "
        "profile's us., eu., apac., us-gov. or global."
    ),
]

AccountId = Annotated[str, Field(pattern=r"^\d{12}$"), Meaning("a 12-digit AWS account id such as 123456789012")]
# An IAM role by name (in the tier's account) or by ARN (any account, with its path): what
# aws:PrincipalArn holds for a session of the role.
IamRole = Annotated[
    str,
    Field(pattern=r"^(arn:aws[a-z-]*:iam::\d{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}|[\w+=,.@-]{1,64})$"),
    Meaning(
        "an IAM role name such as crm-exporter (a role of the tier's account) or a role ARN such as "
        "arn:aws:iam::123456789012:role/crm-exporter"
    ),
]
Region = Annotated[
    str,
    Field(pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$"),
    Meaning("an AWS region name such as us-east-1 or eu-west-2"),
]
Email = Annotated[
    str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), Meaning("an e-mail address such as team@example.com")
]

# Names the deployment derives resource names, claims and routes from.
# AgentCore and Bedrock names allow one - between letters or digits, never two in a row.
Prefix = Annotated[
    str,
    Field(min_length=2, max_length=16, pattern=r"^[a-z](-?[a-z0-9])+$"),
    Meaning("lowercase letters, digits or single -, starting with a letter and ending with a letter or digit"),
]
GroupName = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$"), Meaning("1 to 64 letters, digits, _ or -, such as customer-gold")
]
# Group tiers and document classifications: labels in tokens, metadata and filters.
Label = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$"),
    Meaning("1 to 32 lowercase letters, digits, _ or -, starting with a letter, such as internal"),
]
Classification = Label
# What S3 user metadata carries (a landed record's owner): the connectors' own check, anchored.
MetadataValue = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=f"^{METADATA_VALUE.pattern}$"),
    Meaning("1 to 128 printable ASCII characters, no space at either end, such as crm-team"),
]
# Output types are routes (POST /v1/outputs/<name>) and agent names are Python identifiers.
SnakeName = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z0-9_]{0,31}$"),
    Meaning("1 to 32 lowercase letters, digits or _, starting with a letter, such as research_brief"),
]
# Connector sources: parts of construct ids, S3 prefixes and registry keys.
KebabName = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z0-9-]{0,31}$"),
    Meaning("1 to 32 lowercase letters, digits or -, starting with a letter, such as kb-articles"),
]
# Legacy API targets: AgentCore Gateway target names, which allow one - between letters or digits.
TargetName = Annotated[
    str,
    Field(max_length=32, pattern=r"^[a-z](-?[a-z0-9])*$"),
    Meaning(
        "1 to 32 lowercase letters, digits or single -, starting with a letter and ending with a letter or "
        "digit, such as orders"
    ),
]
# Tool names: the gateway names a tool <target>___<tool>, so a tool name never holds two _ in a
# row (orders___report___summary would read as two targets' worth of names to one side or another).
ToolName = Annotated[
    str,
    Field(max_length=48, pattern=r"^[a-z](_?[a-z0-9])*$"),
    Meaning(
        "1 to 48 lowercase letters, digits or single _, starting with a letter and ending with a letter or "
        "digit, such as find_orders"
    ),
]
IdentifierName = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z0-9_]{0,63}$"),
    Meaning("1 to 64 lowercase letters, digits or _, starting with a letter, such as employee_id"),
]

DomainName = Annotated[
    str,
    Field(max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"),
    Meaning("a lowercase domain name (ASCII; punycode for international names), such as docs.example.com"),
]
MimeType = Annotated[
    str,
    Field(pattern=r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$"),
    Meaning("a lowercase media type without parameters, such as text/html"),
]
HttpsUrl = Annotated[
    str,
    Field(pattern=r"^https://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~/-]*)?$"),
    Meaning("an https:// URL without query or fragment, such as https://orders.example.com/api"),
]
UrlPath = Annotated[
    str,
    Field(pattern=r"^/[A-Za-z0-9._~/-]*$"),
    Meaning("a URL path such as /oauth/token: / then letters, digits or ._~/-"),
]
SecretName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9/_+=.@-]{1,512}$"),
    Meaning("a Secrets Manager secret name: 1 to 512 letters, digits or /_+=.@-"),
]
S3Prefix = Annotated[
    str,
    # A Knowledge Base data source's inclusion prefix is at most 300 characters.
    Field(max_length=300, pattern=r"^([A-Za-z0-9!_.*'()-]+/)+$"),
    Meaning("an S3 key prefix ending in /, such as documents/ (letters, digits or !_.*'()- between slashes)"),
]
CronSchedule = Annotated[
    str,
    Field(pattern=r"^cron\(\S+( \S+){5}\)$"),
    Meaning("a six-field cron expression such as cron(0 3 * * ? *)"),
    AfterValidator(lambda value: _valid_schedule(value)),
]
# An EventBridge schedule: a rate or a cron expression.
Schedule = Annotated[
    str,
    Field(pattern=r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(\S+( \S+){5}\))$"),
    Meaning("a schedule such as rate(15 minutes), rate(1 hour) or cron(0 3 * * ? *)"),
    AfterValidator(lambda value: _valid_schedule(value)),
]
QueryParameter = Annotated[
    str,
    Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"),
    Meaning("a query parameter name: a letter or _, then up to 63 letters, digits or _"),
]


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    lowered = [value.lower() for value in values]
    repeated = sorted({value for value in values if lowered.count(value.lower()) > 1})
    if repeated:
        raise ValueError(f"{', '.join(repeated)} given more than once; allowed: each address once")
    return values


# E-mail addresses, each once (each becomes a subscription).
Emails = Annotated[tuple[Email, ...], AfterValidator(_unique)]


# AWS tags: keys 1-128 and values 0-256 characters of these; the aws: prefix (any case) is
# reserved for AWS, on keys and values (blueprint.tags, and config values app.py tags stacks with).
TAG_KEY = re.compile(r"[\w .:/=+@-]{1,128}")
TAG_VALUE = re.compile(r"[\w .:/=+@-]{0,256}")
TAG_KEY_RULE = "1 to 128 letters, digits, spaces or _.:/=+@-, not starting with aws: (in any case)"
TAG_VALUE_RULE = "up to 256 letters, digits, spaces or _.:/=+@-, not starting with aws: (in any case)"


def is_tag_value(value: str) -> bool:
    return bool(TAG_VALUE.fullmatch(value)) and not value.lower().startswith("aws:")


def _tag_value(value: str) -> str:
    if not is_tag_value(value):
        raise ValueError(f"not a valid AWS tag value: {TAG_VALUE_RULE}")
    return value


# A config value app.py tags stacks with (a field using it may bound its length further).
TagValue = Annotated[str, AfterValidator(_tag_value)]


def _compiles(value: str) -> str:
    """A pattern Python's re compiles, or one it refuses only for an escape it lacks and the
    services' PCRE-style engines have (\\p{L}, \\z, ...): unbalanced groups, a quantifier with
    nothing to repeat and the like are refused."""
    try:
        re.compile(value)
    except re.error as error:
        if not error.msg.startswith("bad escape"):
            raise ValueError(f"not a regular expression: {error}") from None
    return value


# A regular expression as Macie takes it (1 to 512 characters), that compiles.
Regex = Annotated[str, Field(min_length=1, max_length=512), AfterValidator(_compiles)]

# EventBridge cron fields, in order: name, lowest, highest, names for the values (from the lowest).
_CRON_FIELDS = (
    ("minutes", 0, 59, ()),
    ("hours", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day-of-week", 1, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
    ("year", 1970, 2199, ()),
)
# What day-of-month and day-of-week take besides values, ranges, lists and steps.
_CRON_SPECIAL = {
    "day-of-month": re.compile(r"L|LW|\d{1,2}W"),
    "day-of-week": re.compile(r"L|[1-7]L|(?:[1-7]|[A-Z]{3})#[1-5]"),
}


def _valid_schedule(value: str) -> str:
    """A rate(...) or cron(...) expression EventBridge accepts (the pattern has checked its shape)."""
    rate = re.fullmatch(r"rate\((\d+) (\w+)\)", value)
    if rate:
        count, unit = int(rate[1]), rate[2]
        if count < 1:
            raise ValueError("the rate must be at least 1")
        if (count == 1) != (not unit.endswith("s")):
            right = unit.rstrip("s") if count == 1 else f"{unit}s"
            raise ValueError(f"{count} takes {right}")
        return value
    fields = value.removeprefix("cron(").removesuffix(")").split(" ")
    for (name, low, high, names), field in zip(_CRON_FIELDS, fields, strict=True):
        if field == "?" and name in _CRON_SPECIAL:
            continue
        special = _CRON_SPECIAL.get(name)
        for item in field.split(","):
            if special and special.fullmatch(item.upper()) and _cron_special_ok(item, low, high, names):
                continue
            if not _cron_item_ok(item, low, high, names):
                shown = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
                raise ValueError(f"{name} {field!r} is not {shown}, *, ranges, lists or /steps")
    if (fields[2] == "?") == (fields[4] == "?"):
        raise ValueError("one of day-of-month and day-of-week must be ?, the other not")
    return value


def _cron_value(text: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    if text.upper() in names:
        return True
    return text.isdigit() and low <= int(text) <= high


def _cron_special_ok(item: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    """L, LW, 15W (day-of-month); L, 6L, FRI#2 (day-of-week): their numbers in range."""
    number = re.split(r"[LW#]", item.upper(), maxsplit=1)[0]
    return not number or _cron_value(number, low, high, names)


def _cron_item_ok(item: str, low: int, high: int, names: tuple[str, ...]) -> bool:
    """*, a value, a range a-b, each optionally /step."""
    base, slash, step = item.partition("/")
    if slash and not (step.isdigit() and int(step) >= 1):
        return False
    if base == "*":
        return True
    first, dash, last = base.partition("-")
    if dash:
        return _cron_value(first, low, high, names) and _cron_value(last, low, high, names)
    return _cron_value(first, low, high, names)
