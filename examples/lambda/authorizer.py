"""The shop's REQUEST authorizer: an ordinary AWS Lambda authorizer written with Powertools for
AWS Lambda (Python). Known customers (the `x-customer` header, the identity source) are allowed,
with their tier as context; anyone else is denied (403).

    pip install -r requirements.txt
"""
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerEventV2,
    APIGatewayAuthorizerResponseV2,
)

TIERS = {"ada": "gold", "grace": "silver"}


@event_source(data_class=APIGatewayAuthorizerEventV2)
def handler(event: APIGatewayAuthorizerEventV2, context):
    customer = event.get_header_value("x-customer", default_value="")
    tier = TIERS.get(customer)
    return APIGatewayAuthorizerResponseV2(
        authorize=tier is not None,
        context={"customer": customer, "tier": tier} if tier else None,
    ).asdict()
