"""The tools: each collapses a chain of legacy calls into one agent-sized answer.

- ``find_orders``: customer e-mail -> customer id -> that customer's orders (optionally by
  status), projected to the declared fields, a page at a time.
- ``get_customer``: customer id -> the customer and their addresses, projected.

Field maps (declared field -> path in the upstream record) come from the deployment's config,
so the tool's schema and the projection are the same list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from legacy_tools.shaping import decode_cursor, page, project
from shared.legacy_client import LegacyClient
from shared.tool_errors import ToolError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Shape:
    top_k: int = 10
    byte_budget: int = 4000
    fields: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # tool -> declared field -> path


class FindOrders(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)
    status: str | None = Field(default=None, pattern=r"^[a-z_]{1,32}$")
    cursor: str | None = Field(default=None, max_length=512)


class GetCustomer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")


def find_orders(client: LegacyClient, shape: Shape, arguments: Mapping[str, Any]) -> dict[str, Any]:
    request = _arguments(FindOrders, arguments)
    customers, _ = client.get("/v2/customers", {"email": request.customer_email})
    matches = (customers.get("data") or {}).get("items") or []
    if not matches:
        raise ToolError("not_found", "no customer has that e-mail address")
    customer_id = matches[0]["customerId"]
    listing, _ = client.get(f"/v2/customers/{customer_id}/orders", {"status": request.status})
    orders = (listing.get("data") or {}).get("orders") or []
    query = {"tool": "find_orders", "customer_email": request.customer_email, "status": request.status}
    projected = [project(order, shape.fields["find_orders"]) for order in orders]
    offset = decode_cursor(request.cursor, query)
    return page(projected, query=query, offset=offset, top_k=shape.top_k, byte_budget=shape.byte_budget)


def get_customer(client: LegacyClient, shape: Shape, arguments: Mapping[str, Any]) -> dict[str, Any]:
    request = _arguments(GetCustomer, arguments)
    customer, _ = client.get(f"/v2/customers/{request.customer_id}")
    addresses, _ = client.get(f"/v2/customers/{request.customer_id}/addresses")
    record = {"customer": customer.get("data"), "addresses": (addresses.get("data") or {}).get("items") or []}
    return {"record": project(record, shape.fields["get_customer"])}


TOOLS: dict[str, Callable[[LegacyClient, Shape, Mapping[str, Any]], dict[str, Any]]] = {
    "find_orders": find_orders,
    "get_customer": get_customer,
}


def _arguments(model: type[M], arguments: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(arguments)
    except ValidationError as error:
        problems = [f"{'.'.join(map(str, d['loc'])) or 'arguments'}: {d['msg']}" for d in error.errors()]
        raise ToolError("invalid_argument", "; ".join(problems)) from None
