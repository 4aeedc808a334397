"""The orders function: an ordinary AWS Lambda handler written with Powertools for AWS Lambda
(Python), unchanged from what runs on AWS. One function serves both payload formats, the way
one Lambda can sit behind a REST API (format 1.0) and an HTTP API (format 2.0):

- `APIGatewayRestResolver` (1.0): POST /orders (JSON body), GET /orders (repeated query
  string), GET /orders/{id}/label (a binary PNG, base64 on the wire);
- `APIGatewayHttpResolver` (2.0): GET /orders/{id} (path parameter, stage variable, repeated
  query string, authorizer context), GET /me (authorizer context, cookies in and out).

    pip install -r requirements.txt
"""
import zlib

from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    Response,
    content_types,
)
from aws_lambda_powertools.shared.cookies import Cookie

rest = APIGatewayRestResolver()
http = APIGatewayHttpResolver()


def png(width: int, height: int) -> bytes:
    """A black-and-white PNG of the given size (binary, not UTF-8)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    rows = b"".join(b"\x00" + b"\x55" * ((width + 7) // 8) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


# ------------------------------------------------------------------ payload format 1.0

@rest.post("/orders")
def create_order():
    event = rest.current_event
    order = event.json_body  # already validated against the Order model by the gateway
    order_id = f"{order['item']}-{order['quantity']}"
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        headers={"location": f"/orders/{order_id}"},
        body={
            "id": order_id,
            "created": order,
            "by": event.get_header_value("x-customer"),
            "tier": event.request_context.authorizer.get_context().get("tier"),
        },
    )


@rest.get("/orders")
def list_orders():
    event = rest.current_event
    statuses = event.get_multi_value_query_string_values("status", default_values=["open"])
    return {
        "statuses": statuses,
        "limit": int(event.get_query_string_value("limit", default_value="10")),
        "customer": event.get_header_value("x-customer"),
    }


@rest.get("/orders/<order_id>/label")
def order_label(order_id: str):
    # A bytes body: Powertools answers base64 with isBase64Encoded, and the gateway decodes it.
    return Response(status_code=200, content_type="image/png", body=png(8 * len(order_id), 8))


# ------------------------------------------------------------------ payload format 2.0

@http.get("/orders/<order_id>")
def get_order(order_id: str):
    event = http.current_event
    expand = event.get_query_string_value("expand", default_value="")
    return {
        "id": order_id,
        "customer": event.get_header_value("x-customer"),
        "tier": event.request_context.authorizer.get_lambda.get("tier"),
        "region": event.stage_variables.get("region"),
        "expand": [e for e in expand.split(",") if e],  # 2.0 joins repeats with commas
        "requestId": event.request_context.request_id,
    }


@http.get("/me")
def me():
    event = http.current_event
    cookies = dict(c.split("=", 1) for c in event.cookies if "=" in c)
    context = event.request_context.authorizer.get_lambda
    theme = cookies.get("theme", "light")
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        cookies=[Cookie(name="theme", value=theme, path="/", max_age=86400)],
        body={"customer": context.get("customer"), "tier": context.get("tier"), "theme": theme},
    )


def handler(event, context):
    """The Lambda entry point: each resolver reads the payload format it is made for."""
    app = http if event.get("version") == "2.0" else rest
    return app.resolve(event, context)

