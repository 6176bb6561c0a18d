"""The tools, by name: the chained ones in code here, the single-call ones built from config.

- ``find_orders`` (chained): customer e-mail -> customer id -> that customer's orders (optionally
  by status), projected to the declared fields, a page at a time.
- ``get_customer`` (chained): customer id -> the customer and their addresses, projected.
- single-call tools (lambdas/legacy_tools/contract.py ``SingleCallTool``): one GET, projected.

Field maps (declared field -> path in the upstream record) come from the deployment's config,
so the tool's description and the projection are the same list. Adding a chained tool is one
entry in ``CHAINED`` (its spec and its function) plus its fields in config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from legacy_tools.contract import CURSOR, SingleCallTool
from legacy_tools.shaping import decode_cursor, page, project, single
from shared.bodies import BodyError, check_arguments, problems
from shared.field_paths import value_at
from shared.tool_errors import ToolError
from shared.tools import ToolSpec

if TYPE_CHECKING:  # the CDK app imports this module for its registry: no HTTP client there
    from shared.legacy_client import LegacyClient

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Shape:
    top_k: int = 10
    byte_budget: int = 4000
    fields: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # tool -> declared field -> path


Run = Callable[["LegacyClient", Shape, Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Tool:
    """A tool's spec (name, description, argument model) and what runs it."""

    spec: ToolSpec
    run: Run

    def __call__(self, client: LegacyClient, shape: Shape, arguments: Mapping[str, Any]) -> dict[str, Any]:
        return self.run(client, shape, arguments)


class FindOrders(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Letters, digits and the marks real addresses hold (. _ + ' -): no * or %, which a lookup may
    # read as wildcards, and no space, double quote or control character. Whatever the lookup
    # matches, only a customer of exactly this address is used (_the_customer).
    customer_email: str = Field(
        pattern=r"^[A-Za-z0-9._+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$",
        max_length=254,
        description="The customer's e-mail address",
    )
    status: str | None = Field(default=None, pattern=r"^[a-z_]{1,32}$", description="Only orders in this status")
    cursor: str | None = Field(default=None, max_length=512, description="next_cursor of the previous page")


class GetCustomer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The customer id")


def find_orders(client: LegacyClient, shape: Shape, arguments: Mapping[str, Any]) -> dict[str, Any]:
    request = _arguments(FindOrders, arguments)
    query = {"tool": "find_orders", "customer_email": request.customer_email, "status": request.status}
    offset = decode_cursor(request.cursor, query)  # a forged cursor costs the service no call
    customers, _ = client.get("/v2/customers", {"email": request.customer_email})
    items = _list(_object(_object(customers, "the answer").get("data"), "data").get("items"), "data.items")
    customer = _the_customer(items, request.customer_email)
    customer_id = _chained_segment(customer.get("customerId"), "customerId")
    listing, _ = client.get(f"/v2/customers/{customer_id}/orders", {"status": request.status})
    orders = _list(_object(_object(listing, "the answer").get("data"), "data").get("orders"), "data.orders")
    return _page(orders, shape, shape.fields["find_orders"], query=query, offset=offset)


def _the_customer(items: list[Any], email: str) -> Mapping[str, Any]:
    """The one customer whose e-mail address is ``email`` (in any case). The lookup is the
    service's to match as it likes (loosely, by prefix, or not at all): whatever else it answers is
    no customer of this address, and of several of them none can be told to be the one asked for."""
    matches: list[Mapping[str, Any]] = []
    for index, item in enumerate(items):
        customer = _object(item, f"data.items[{index}]")
        address = customer.get("email")
        if isinstance(address, str) and address.lower() == email.lower():
            matches.append(customer)
    if not matches:
        raise ToolError("not_found", "no customer has that e-mail address")
    if len(matches) > 1:  # (the taxonomy's kind for "this argument cannot name one customer")
        raise ToolError("invalid_argument", "customer_email: more than one customer has that e-mail address")
    return matches[0]


def get_customer(client: LegacyClient, shape: Shape, arguments: Mapping[str, Any]) -> dict[str, Any]:
    request = _arguments(GetCustomer, arguments)
    customer_id = _segment("customer_id", request.customer_id)
    customer, _ = client.get(f"/v2/customers/{customer_id}")
    addresses, _ = client.get(f"/v2/customers/{customer_id}/addresses")
    items = _list(_object(_object(addresses, "the answer").get("data"), "data").get("items"), "data.items")
    record = {"customer": _object(customer, "the answer").get("data"), "addresses": items}
    return single(project(record, shape.fields["get_customer"]), shape.byte_budget)


def _page(
    items: list[Any], shape: Shape, fields: Mapping[str, str], *, query: Mapping[str, Any], offset: int
) -> dict[str, Any]:
    """One page of the upstream's items, each projected to the declared fields (the page's only)."""
    return page(
        items,
        query=query,
        offset=offset,
        top_k=shape.top_k,
        byte_budget=shape.byte_budget,
        shape=lambda item: project(item, fields),
    )


def _object(value: Any, where: str) -> Mapping[str, Any]:
    """An object the tool reads on from; absent (null) reads as empty, anything else is a changed API."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _changed(f"{where} is not an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _changed(f"{where} is not a list")
    return value


def _chained_segment(value: Any, where: str) -> str:
    """A value one answer hands the next request: exactly one encoded path segment, or refused.

    Encoded with nothing safe, so "/", "?", "#" and "%" (hence "%2F", "%2e%2e") stay inside the
    segment; the dot segments, which name the parent, are refused outright.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _changed(f"{where} is not an identifier")
    text = str(value)
    if text in {"", ".", ".."} or len(text) > 256:
        raise _changed(f"{where} is not an identifier")
    # Text that is Unicode: the client reads half a surrogate pair JSON escapes as U+FFFD (decode_json).
    return quote(text, safe="")


def _changed(what: str) -> ToolError:
    return ToolError("upstream_unavailable", f"the service's answer has changed: {what}", retry_after=30)


CHAINED: dict[str, Tool] = {
    "find_orders": Tool(
        ToolSpec(
            "find_orders",
            "A customer's orders, newest data first, a page at a time. Each record has: {fields}.",
            FindOrders,
        ),
        find_orders,
    ),
    "get_customer": Tool(
        ToolSpec("get_customer", "One customer with their addresses. The record has: {fields}.", GetCustomer),
        get_customer,
    ),
}
# The chained tools, callable by name (``TOOLS[name](client, shape, arguments)``).
TOOLS: Mapping[str, Tool] = CHAINED


def single_call(name: str, declared: SingleCallTool) -> Tool:
    """A config-declared tool: one GET built from its arguments, projected (and paged)."""
    spec = declared.spec(name)
    in_path = declared.path_arguments()

    def run(client: LegacyClient, shape: Shape, arguments: Mapping[str, Any]) -> dict[str, Any]:
        request = _arguments(spec.arguments, arguments).model_dump(exclude_none=True)
        cursor = request.pop(CURSOR, None)
        query = {"tool": name, **request}  # what a cursor is bound to: path arguments included
        offset = decode_cursor(cursor, query)  # a forged cursor costs the service no call
        path = declared.path.format_map({key: _segment(key, request.pop(key)) for key in in_path})
        answer, _ = client.get(path, request or None)
        fields = shape.fields[name]
        if declared.records is None:
            return single(project(answer, fields), shape.byte_budget)
        items = value_at(answer, declared.records)
        if not isinstance(items, list):
            raise ToolError(
                "upstream_unavailable", f"the service's answer holds no list at {declared.records}: it has changed"
            )
        return _page(items, shape, fields, query=query, offset=offset)

    return Tool(spec, run)


def _segment(argument: str, value: Any) -> str:
    """A path value as exactly one segment: encoded, and never one that names another path."""
    text = str(value)
    if text in {"", ".", ".."}:
        raise ToolError("invalid_argument", f"{argument}: not an identifier")
    return quote(text, safe="")


def registry(chained: Mapping[str, Any], single_calls: Mapping[str, SingleCallTool]) -> dict[str, Tool]:
    """The tools one function serves: the configured chained tools and its single-call tools."""
    return {**{name: CHAINED[name] for name in chained}, **{n: single_call(n, t) for n, t in single_calls.items()}}


def _arguments(model: type[M], arguments: Mapping[str, Any]) -> M:
    try:
        # The interceptor bounds them before any target is called; counted here too, so a call
        # that reached the function another way cannot hold an error per key past its memory.
        check_arguments(arguments)
    except BodyError as error:
        raise ToolError("invalid_argument", str(error)) from None
    try:
        return model.model_validate(arguments)
    except ValidationError as error:
        # Bounded, and never the caller's values: 2,000 unknown keys of a kilobyte each would
        # otherwise come back whole in the message.
        # (No envelope: "body" and "path" are names a single-call tool may give its arguments.)
        raise ToolError("invalid_argument", problems(error, whole="arguments", envelope=())) from None
