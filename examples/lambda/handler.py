"""An ordinary AWS Lambda handler (Python), unchanged from what runs on AWS."""
import json


def handler(event, context):
    if event.get("version") == "2.0":  # GET /orders/{id}, payload format 2.0
        order_id = event["pathParameters"]["id"]
        return {
            "statusCode": 200,
            "headers": {"content-type": "application/json"},
            "body": json.dumps({
                "id": order_id,
                "customer": event["headers"].get("x-customer"),
                "region": event["stageVariables"]["region"],
                "requestId": event["requestContext"]["requestId"],
            }),
        }
    order = json.loads(event["body"])  # POST /orders, payload format 1.0, already validated
    return {
        "statusCode": 201,
        "multiValueHeaders": {"location": [f"/orders/{order['item']}-1"]},
        "body": json.dumps({"created": order, "by": event["headers"].get("x-customer")}),
    }
