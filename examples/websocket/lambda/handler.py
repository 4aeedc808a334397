"""The chat's function: an ordinary AWS Lambda handler for a WebSocket API, written with
Powertools for AWS Lambda (Python) and unchanged from what runs on AWS. Causeway calls it with
API Gateway's WebSocket proxy events (CONNECT, MESSAGE, DISCONNECT); Powertools' parser
models validate each one.

- `$connect`: admits a client that offers no subprotocol or one of PROTOCOLS, and answers
  `Sec-WebSocket-Protocol` with the first of the client's offers it speaks (AWS's
  subprotocol example); a client that offers only others is refused with 400.
- `whoami` (two-way): answers what the event says about the caller.
- `$default` (two-way): echoes the message.
- `$disconnect`: logs the close code and reason.

Logs go to stderr as JSON (Powertools Logger). Run it behind examples/lambda/invoke.py:

    PYTHONPATH=examples/websocket/lambda python3 examples/lambda/invoke.py 9002 handler.handler
"""
import json
import sys

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)

logger = Logger(service="chat-fn", stream=sys.stderr)
PROTOCOLS = ("chat.v2", "chat.v1")


def on_connect(event: dict) -> dict:
    connect = parse(event=event, model=APIGatewayWebSocketConnectEventModel)
    headers = {name.lower(): value for name, value in connect.headers.items()}
    offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    chosen = next((p for p in offered if p in PROTOCOLS), None)
    if offered and chosen is None:
        logger.info("refused: no subprotocol in common", offered=offered)
        return {"statusCode": 400}
    context = connect.request_context
    logger.info("connected", connection_id=context.connection_id, protocol=chosen,
                source_ip=str(context.identity.source_ip))
    answer = {"statusCode": 200}
    if chosen:
        answer["headers"] = {"Sec-WebSocket-Protocol": chosen}
    return answer


def on_message(event: dict) -> dict:
    message = parse(event=event, model=APIGatewayWebSocketMessageEventModel)
    context = message.request_context
    if context.route_key == "whoami":
        body = {
            "connectionId": context.connection_id,
            "routeKey": context.route_key,
            "messageId": context.message_id,
            "stage": context.stage,
            "apiId": context.api_id,
            "domainName": context.domain_name,
            "sourceIp": str(context.identity.source_ip.network_address),
            "connectedAt": context.connected_at.isoformat(),
        }
        return {"statusCode": 200, "body": json.dumps(body)}
    return {"statusCode": 200, "body": json.dumps({"echo": message.body})}


def on_disconnect(event: dict) -> dict:
    disconnect = parse(event=event, model=APIGatewayWebSocketDisconnectEventModel)
    context = disconnect.request_context
    logger.info("disconnected", connection_id=context.connection_id,
                code=context.disconnect_status_code, reason=context.disconnect_reason)
    return {"statusCode": 200}


def handler(event, context):
    """The Lambda entry point: one function serves every route of the Api."""
    kind = event["requestContext"]["eventType"]
    return {"CONNECT": on_connect, "MESSAGE": on_message, "DISCONNECT": on_disconnect}[kind](event)
