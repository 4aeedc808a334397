//! Condition reasons: every reason `compile` writes, in one place.
//!
//! `Accepted=False` says the object itself is wrong; `ResolvedRefs=False` says something it
//! names is missing or may not be referenced.

/// The object is valid and in the snapshot.
pub const ACCEPTED: &str = "Accepted";
/// Every reference resolved.
pub const RESOLVED_REFS: &str = "ResolvedRefs";

/// A field value is invalid (the message names the field).
pub const INVALID: &str = "Invalid";
/// A CEL rule of the CRD failed (checked here too, since old API servers drop CEL rules).
pub const VALIDATION_RULE_FAILED: &str = "ValidationRuleFailed";
/// The route key is not `$default` or `METHOD /path`, or the path is malformed.
pub const INVALID_ROUTE_KEY: &str = "InvalidRouteKey";
/// Another Route of the same Api has the same route key (the older one wins).
pub const DUPLICATE_ROUTE_KEY: &str = "DuplicateRouteKey";
/// The route's path conflicts with another's (for example `/a/{x}` and `/a/{y}`).
pub const CONFLICTING_ROUTE: &str = "ConflictingRoute";
/// A template (path, URI, mock body) is malformed or names an unknown parameter.
pub const INVALID_TEMPLATE: &str = "InvalidTemplate";
/// A template names a stage variable the stage does not define.
pub const UNKNOWN_STAGE_VARIABLE: &str = "UnknownStageVariable";
/// The integration type is not supported for this protocol, or is not built yet.
pub const UNSUPPORTED_INTEGRATION: &str = "UnsupportedIntegration";
/// The object uses a feature this version does not build yet (for example `authorizerRef`, a
/// WebSocket Api, or a domain with client-certificate checks). It is left out rather than
/// served without the feature: Causeway fails closed.
pub const UNSUPPORTED_FEATURE: &str = "UnsupportedFeature";
/// Another Stage of the same Api has the same stage name.
pub const DUPLICATE_STAGE: &str = "DuplicateStageName";
/// Another Stage claims the same hostname and base path.
pub const CONFLICTING_DOMAIN: &str = "ConflictingDomain";

/// The referenced Api does not exist or was not accepted.
pub const API_NOT_FOUND: &str = "ApiNotFound";
/// The referenced Service does not exist, or lacks the port.
pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
/// The referenced Authorizer does not exist or belongs to another Api.
pub const AUTHORIZER_NOT_FOUND: &str = "AuthorizerNotFound";
/// A usage plan names a stage that does not exist or is not accepted.
pub const STAGE_NOT_FOUND: &str = "StageNotFound";
/// A SERVICE_ACCOUNT authorizer has no cluster keys: neither `jwksSecretRef` nor a JWKS
/// delivered by the controller.
pub const SERVICE_ACCOUNT_KEYS_NOT_FOUND: &str = "ServiceAccountKeysNotFound";
/// The referenced Secret (or key in it) does not exist.
pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
/// The referenced VpcLink does not exist.
pub const VPC_LINK_NOT_FOUND: &str = "VpcLinkNotFound";
/// A backend in another namespace without a VpcLink that grants access.
pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
/// A `uri` naming an IP address (or `localhost`) that no VpcLink grants, or an address outside
/// the `addresses` of the VpcLink the route names.
pub const ADDRESS_NOT_PERMITTED: &str = "AddressNotPermitted";
/// A pinned deployment id is not the current one and not in the history.
pub const DEPLOYMENT_NOT_FOUND: &str = "DeploymentNotFound";
/// The stage's Api has no accepted routes.
pub const NO_ROUTES: &str = "NoRoutes";
/// A parameter mapping key or value is malformed (the message names the key).
pub const INVALID_MAPPING: &str = "InvalidMapping";
/// A route's request validation names a model the Api does not define.
pub const MODEL_NOT_FOUND: &str = "ModelNotFound";
/// A value is one the proxy would refuse once this stage's variables are substituted (a
/// header value with a control character, a mapping that no longer parses); the stage alone is
/// left out.
pub const INVALID_STAGE_VARIABLE: &str = "InvalidStageVariable";
/// A JWT authorizer names no audience: any token of its issuer, minted for any client, would
/// pass.
pub const AUDIENCE_REQUIRED: &str = "AudienceRequired";
/// A JWKS or discovery URL points at loopback, link-local (cloud metadata), or the proxy's
/// admin port, and the Authorizer does not set `allowPrivateJwks: true`.
pub const PRIVATE_JWKS: &str = "PrivateJwksUrl";
/// A mapping template (Velocity) does not parse; the message names the template (request or
/// integration response), its content type, and the line and column.
pub const INVALID_MAPPING_TEMPLATE: &str = "InvalidMappingTemplate";
/// An integration response's `selectionPattern` is not a valid regular expression.
pub const INVALID_SELECTION_PATTERN: &str = "InvalidSelectionPattern";

/// `Api.spec.definition` was imported and every object it gave was accepted.
pub const DEFINITION_IMPORTED: &str = "DefinitionImported";
/// `Api.spec.definition` could not be imported (the message says where and why).
pub const INVALID_DEFINITION: &str = "InvalidDefinition";
/// The ConfigMap (or its key) named by `Api.spec.definition.configMapRef` does not exist.
pub const DEFINITION_NOT_FOUND: &str = "DefinitionNotFound";
/// `Api.spec.definition` was imported, but compile rejected some of the objects it gave.
pub const DEFINITION_PARTLY_REJECTED: &str = "DefinitionPartlyRejected";
