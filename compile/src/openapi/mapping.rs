//! The mapping file: what only AWS can name (Lambda functions, VPC links, Cognito user pools,
//! IAM credentials), and where it runs in the cluster instead.
//!
//! ```yaml
//! lambda:                       # by function ARN (qualified or not) or by function name
//!   GetPets: {backendRef: {name: get-pets, port: 8080}}
//!   "arn:aws:lambda:us-east-1:123456789012:function:Auth": {uri: "http://auth.security:8080"}
//! vpcLinks:                     # by connectionId
//!   abc123: {vpcLinkRef: {name: shared, namespace: net}, backendRef: {name: orders, namespace: net, port: 80}}
//! cognito:                      # by user pool ARN or pool id; issuer default: the pool's AWS one
//!   us-east-1_AbCd: {audiences: [web]}      # the pool's app client ids
//! securitySchemes:              # OAuth2 / OpenID Connect schemes without an AWS authorizer
//!   oauth: {issuer: "https://idp.example.com", audiences: [api]}
//! sigv4: {credentialsSecret: aws-keys, region: eu-west-1}
//! defaultIntegration: {type: HTTP_PROXY, uri: "http://pets.shop:8080"}   # operations without one
//! ```

use std::collections::BTreeMap;

use causeway_crds::common::ObjectRef;
use causeway_crds::route::{BackendRef, IntegrationSpec};
use serde::{Deserialize, Serialize};

use super::report::ImportError;

/// What the mapping file says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportMapping {
    /// Lambda functions (by ARN, qualified ARN or function name) → where they run.
    #[serde(default)]
    pub lambda: BTreeMap<String, FunctionTarget>,
    /// VPC link `connectionId` → VpcLink and backend.
    #[serde(default)]
    pub vpc_links: BTreeMap<String, VpcLinkTarget>,
    /// Cognito user pools (ARN or pool id) → issuer and audiences.
    #[serde(default)]
    pub cognito: BTreeMap<String, CognitoTarget>,
    /// Security schemes without an AWS authorizer (`oauth2`, `openIdConnect`) → a JWT issuer.
    #[serde(default)]
    pub security_schemes: BTreeMap<String, CognitoTarget>,
    /// Credentials for `awsSigv4` (IAM) authorization.
    #[serde(default)]
    pub sigv4: Option<SigV4Target>,
    /// The integration of operations that have no `x-amazon-apigateway-integration` (plain
    /// OpenAPI documents); without it such operations are not carried over.
    #[serde(default)]
    pub default_integration: Option<IntegrationSpec>,
}

impl ImportMapping {
    /// Parses a mapping file (YAML or JSON).
    pub fn parse(text: &str) -> Result<Self, ImportError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_saphyr::from_str(text).map_err(|e| ImportError::Mapping(e.to_string()))
    }

    /// The target of a Lambda function ARN: by the ARN as written, without an alias or
    /// version qualifier, then by function name.
    pub(crate) fn function(&self, arn: &str) -> Option<&FunctionTarget> {
        if let Some(t) = self.lambda.get(arn) {
            return Some(t);
        }
        let name = function_name(arn)?;
        let unqualified = arn
            .split_once(":function:")
            .map(|(head, _)| format!("{head}:function:{name}"));
        unqualified
            .and_then(|u| self.lambda.get(&u))
            .or_else(|| self.lambda.get(name))
    }
}

/// The function name of a Lambda ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`).
pub(crate) fn function_name(arn: &str) -> Option<&str> {
    let (_, rest) = arn.split_once(":function:")?;
    let name = rest.split(':').next()?;
    (!name.is_empty()).then_some(name)
}

/// Where a Lambda function runs: a Service (for example the function image with the Lambda
/// Runtime Interface Emulator) or a URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FunctionTarget {
    /// The Service.
    #[serde(default)]
    pub backend_ref: Option<BackendRef>,
    /// A URL instead of a Service.
    #[serde(default)]
    pub uri: Option<String>,
    /// Invocation path (default: the Runtime Interface Emulator's).
    #[serde(default)]
    pub path: Option<String>,
}

/// What a VPC link's `connectionId` becomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VpcLinkTarget {
    /// The VpcLink granting access to the backend's namespace.
    #[serde(default)]
    pub vpc_link_ref: Option<ObjectRef>,
    /// The backend Service the load balancer fronted.
    pub backend_ref: BackendRef,
}

/// A JWT issuer (for Cognito pools and OAuth2/OpenID Connect schemes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CognitoTarget {
    /// The `iss` of the tokens. Required for `securitySchemes`; for a Cognito user pool the
    /// default is the pool's AWS issuer, `https://cognito-idp.{region}.amazonaws.com/{poolId}`
    /// (the region is the pool id's prefix), so that naming its app clients is enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Accepted audiences (`aud`).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Where the keys are; default from OIDC discovery of the issuer.
    #[serde(default)]
    pub jwks_uri: Option<String>,
}

/// SigV4 credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SigV4Target {
    /// Name of a Secret whose keys are access key ids and values the secret keys.
    pub credentials_secret: String,
    /// Region in the credential scope.
    #[serde(default)]
    pub region: Option<String>,
}
