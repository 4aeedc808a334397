//! Security schemes → Authorizers (`x-amazon-apigateway-authorizer` token, request, jwt and
//! cognito_user_pools; SigV4; OAuth2/OpenID Connect through the mapping file; API keys), and
//! an operation's `security` → the Route's authorizer, scopes and API key requirement.
//! Whatever would weaken authorization is a `security` note.

use super::*;

impl Importer<'_> {
    pub(super) fn security_schemes(&mut self) {
        let base = self.dialect.security_schemes_pointer();
        let Some(schemes) = self.doc.pointer(base).and_then(Value::as_object) else {
            return;
        };
        let schemes = schemes.clone();
        for (name, raw) in &schemes {
            let at = child(base, name);
            let Some((value, _)) = resolve(self.doc, raw, &at, &mut self.notes) else {
                self.schemes.insert(
                    name.clone(),
                    Scheme::Unmapped {
                        pointer: at.clone(),
                        why: "the scheme cannot be resolved".into(),
                    },
                );
                continue;
            };
            let value = value.clone();
            let scheme = self.scheme(name, &value, &at);
            self.schemes.insert(name.clone(), scheme);
        }
    }

    pub(super) fn scheme(&mut self, name: &str, v: &Value, at: &str) -> Scheme {
        let unmapped = |why: String| Scheme::Unmapped {
            pointer: at.to_string(),
            why,
        };
        let Some(o) = v.as_object() else {
            return unmapped("a security scheme must be a mapping".into());
        };
        leftover_keys(
            o,
            at,
            &[
                "type",
                "name",
                "in",
                "scheme",
                "flows",
                "flow",
                "openIdConnectUrl",
                "authorizationUrl",
                "tokenUrl",
                "scopes",
                "x-amazon-apigateway-authtype",
                "x-amazon-apigateway-authorizer",
                cx::AUTHORIZER,
            ],
            &["description", "bearerFormat"],
            &mut self.notes,
        );
        let auth_name = format!("{}-{}", self.api_name, slug(name, 63));
        let auth_name = fit_name(&auth_name);
        if let Some(exact) = o.get(cx::AUTHORIZER) {
            let n = exact
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| is_dns_label(n) || is_dns_subdomain(n))
                .map(str::to_string)
                .unwrap_or(auth_name);
            let mut spec = exact.get("spec").cloned().unwrap_or(Value::Null);
            if let Some(s) = spec.as_object_mut() {
                s.insert("apiRef".into(), serde_json::json!({"name": self.api_name}));
            }
            return match serde_json::from_value::<AuthorizerSpec>(spec) {
                Ok(spec) => {
                    let jwt = spec.type_ == AuthorizerType::Jwt;
                    self.add_authorizer(&n, spec);
                    Scheme::Authorizer { name: n, jwt }
                }
                Err(e) => unmapped(format!("{} is not an Authorizer spec: {e}", cx::AUTHORIZER)),
            };
        }
        let type_ = o.get("type").and_then(Value::as_str).unwrap_or("");
        let authtype = o
            .get("x-amazon-apigateway-authtype")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        if let Some(auth) = o.get("x-amazon-apigateway-authorizer") {
            let aat = child(at, "x-amazon-apigateway-authorizer");
            return match self.aws_authorizer(auth, &aat, o) {
                Ok(spec) => {
                    let jwt = spec.type_ == AuthorizerType::Jwt;
                    self.add_authorizer(&auth_name, spec);
                    Scheme::Authorizer {
                        name: auth_name,
                        jwt,
                    }
                }
                Err(why) => unmapped(why),
            };
        }
        if authtype == "awssigv4" || authtype == "aws_iam" {
            let (secret, region) = match &self.mapping.sigv4 {
                Some(t) => (t.credentials_secret.clone(), t.region.clone()),
                None => {
                    let secret = fit_name(&format!("{}-sigv4-credentials", self.api_name));
                    self.notes.dropped(
                        at,
                        format!("IAM identities and policies are not carried over: the SIGV4 authorizer checks access keys from Secret {secret:?} (create it, or name another in the mapping file's sigv4.credentialsSecret)"),
                    );
                    (secret, None)
                }
            };
            let spec = AuthorizerSpec {
                sigv4: Some(SigV4Spec {
                    region,
                    service: None,
                    credentials_secret_ref: SecretRef { name: secret },
                    max_skew_seconds: None,
                }),
                ..authorizer_spec(&self.api_name, AuthorizerType::Sigv4)
            };
            self.add_authorizer(&auth_name, spec);
            return Scheme::Authorizer {
                name: auth_name,
                jwt: false,
            };
        }
        if !authtype.is_empty() {
            return unmapped(format!(
                "x-amazon-apigateway-authtype {authtype:?} without an x-amazon-apigateway-authorizer"
            ));
        }
        match type_ {
            "apiKey" => {
                let header = o.get("in").and_then(Value::as_str) == Some("header");
                let key_name = o.get("name").and_then(Value::as_str).unwrap_or("");
                if header && key_name.eq_ignore_ascii_case("x-api-key") {
                    Scheme::ApiKey
                } else {
                    unmapped(format!(
                        "API keys are read from the x-api-key header only, not {key_name:?} in {:?}",
                        o.get("in").and_then(Value::as_str).unwrap_or("?")
                    ))
                }
            }
            "oauth2" | "openIdConnect" | "http" => match self.mapping.security_schemes.get(name) {
                Some(t) if t.issuer.is_none() => unmapped(format!(
                    "the mapping file's securitySchemes entry {name:?} names no issuer"
                )),
                Some(t) => {
                    let spec = AuthorizerSpec {
                        jwt: Some(JwtSpec {
                            issuer: t.issuer.clone().unwrap_or_default(),
                            audiences: t.audiences.clone(),
                            jwks_uri: t.jwks_uri.clone(),
                            jwks_secret_ref: None,
                            algorithms: Vec::new(),
                            leeway_seconds: None,
                            allow_private_jwks: None,
                        }),
                        ..authorizer_spec(&self.api_name, AuthorizerType::Jwt)
                    };
                    self.add_authorizer(&auth_name, spec);
                    Scheme::Authorizer {
                        name: auth_name,
                        jwt: true,
                    }
                }
                None => unmapped(format!(
                    "a {type_} scheme has no AWS authorizer; name its JWT issuer in the mapping file (securitySchemes.{name}) to carry it over"
                )),
            },
            other => unmapped(format!("security scheme type {other:?} cannot be mapped")),
        }
    }

    /// Schemes that could not be mapped and that no operation uses: reported, harmlessly.
    pub(super) fn unused_schemes(&mut self) {
        for (name, scheme) in &self.schemes {
            if let Scheme::Unmapped { pointer, why } = scheme
                && !self.used_schemes.contains(name)
            {
                self.notes.dropped(
                    pointer,
                    format!("no operation uses this scheme, which cannot be carried over: {why}"),
                );
            }
        }
    }

    pub(super) fn add_authorizer(&mut self, name: &str, spec: AuthorizerSpec) {
        self.authorizers.insert(
            name.to_string(),
            Authorizer {
                metadata: meta(name, &self.options.namespace),
                spec,
                status: None,
            },
        );
    }

    /// `x-amazon-apigateway-authorizer` → an Authorizer spec, or why not.
    pub(super) fn aws_authorizer(
        &mut self,
        v: &Value,
        at: &str,
        scheme: &Map<String, Value>,
    ) -> Result<AuthorizerSpec, String> {
        let o = v
            .as_object()
            .ok_or("x-amazon-apigateway-authorizer must be a mapping")?;
        leftover_keys(
            o,
            at,
            &[
                "type",
                "authorizerUri",
                "identitySource",
                "identityValidationExpression",
                "authorizerResultTtlInSeconds",
                "jwtConfiguration",
                "providerARNs",
                "enableSimpleResponses",
                "authorizerPayloadFormatVersion",
                "authorizerCredentials",
            ],
            &[],
            &mut self.notes,
        );
        if o.contains_key("authorizerCredentials") {
            self.notes.ignored(
                &child(at, "authorizerCredentials"),
                "the IAM role AWS assumes to invoke the function has no counterpart",
            );
        }
        let type_ = o
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        let identity_source = self.identity_sources(
            o.get("identitySource"),
            scheme,
            &child(at, "identitySource"),
        );
        match type_.as_str() {
            "token" | "request" => {
                let uri = o
                    .get("authorizerUri")
                    .and_then(Value::as_str)
                    .ok_or("a Lambda authorizer without authorizerUri")?;
                let arn = lambda_arn(uri).ok_or_else(|| {
                    format!("authorizerUri {uri:?} does not name a Lambda function")
                })?;
                let target = self.mapping.function(&arn).cloned().ok_or_else(|| {
                    format!("Lambda authorizer {arn} is not in the mapping file's `lambda` section, so there is nothing to call")
                })?;
                let ttl = o
                    .get("authorizerResultTtlInSeconds")
                    .and_then(as_u64)
                    .map(|n| u32::try_from(n.min(3600)).unwrap_or(3600));
                let simple = o.get("enableSimpleResponses").and_then(Value::as_bool);
                let kind = if type_ == "token" {
                    AuthorizerType::Token
                } else {
                    AuthorizerType::Request
                };
                if o.contains_key("authorizerPayloadFormatVersion") {
                    self.notes.dropped(
                        &child(at, "authorizerPayloadFormatVersion"),
                        "the function receives Causeway's authorizer event, whatever payload format is asked for here; check that it reads that event",
                    );
                }
                Ok(AuthorizerSpec {
                    identity_source,
                    function: Some(FunctionAuthorizerSpec {
                        backend_ref: target.backend_ref.clone(),
                        uri: target.uri.clone(),
                        path: target.path.clone(),
                        timeout_millis: None,
                        result_ttl_seconds: ttl,
                        identity_validation_expression: o
                            .get("identityValidationExpression")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        response_format: match simple {
                            Some(true) => Some(AuthorizerResponseFormat::Simple),
                            _ if !self.http_api => Some(AuthorizerResponseFormat::Iam),
                            _ => None,
                        },
                    }),
                    ..authorizer_spec(&self.api_name, kind)
                })
            }
            "jwt" => {
                let c = o
                    .get("jwtConfiguration")
                    .and_then(Value::as_object)
                    .ok_or("a jwt authorizer without jwtConfiguration")?;
                let issuer = c
                    .get("issuer")
                    .and_then(Value::as_str)
                    .ok_or("jwtConfiguration without issuer")?;
                Ok(AuthorizerSpec {
                    identity_source,
                    jwt: Some(JwtSpec {
                        issuer: issuer.to_string(),
                        audiences: strings(c.get("audience")),
                        jwks_uri: None,
                        jwks_secret_ref: None,
                        algorithms: Vec::new(),
                        leeway_seconds: None,
                        allow_private_jwks: None,
                    }),
                    ..authorizer_spec(&self.api_name, AuthorizerType::Jwt)
                })
            }
            "cognito_user_pools" => {
                let arns = strings(o.get("providerARNs"));
                let first = arns
                    .first()
                    .ok_or("a cognito_user_pools authorizer without providerARNs")?;
                if arns.len() > 1 {
                    self.notes.dropped(
                        &child(at, "providerARNs"),
                        "one issuer per authorizer: tokens of the first user pool only are accepted",
                    );
                }
                let pool_id = first.rsplit('/').next().unwrap_or(first).to_string();
                let target = self
                    .mapping
                    .cognito
                    .get(first)
                    .or_else(|| self.mapping.cognito.get(&pool_id))
                    .cloned();
                let (issuer, audiences, jwks_uri) = match target {
                    Some(t) => (t.issuer, t.audiences, t.jwks_uri),
                    None => (None, Vec::new(), None),
                };
                let issuer = match issuer {
                    Some(issuer) => issuer,
                    None => {
                        // The pool's AWS issuer: the region is the pool id's prefix.
                        let region = pool_id.split('_').next().unwrap_or("");
                        if region.is_empty() || !pool_id.contains('_') {
                            return Err(format!(
                                "user pool {first:?} names no region; map it in the mapping file's `cognito` section"
                            ));
                        }
                        format!("https://cognito-idp.{region}.amazonaws.com/{pool_id}")
                    }
                };
                if audiences.is_empty() {
                    // AWS accepts a token from any app client of the pool; Causeway checks the
                    // audience (`aud`, or `client_id` of access tokens) so that a token minted
                    // for another client of the same pool does not pass.
                    return Err(format!(
                        "user pool {first:?}: name its app client ids as `audiences` in the mapping file's `cognito` section (a token for any client of the pool would pass otherwise)"
                    ));
                }
                Ok(AuthorizerSpec {
                    identity_source,
                    jwt: Some(JwtSpec {
                        issuer,
                        audiences,
                        jwks_uri,
                        jwks_secret_ref: None,
                        algorithms: vec!["RS256".into()],
                        leeway_seconds: None,
                        allow_private_jwks: None,
                    }),
                    ..authorizer_spec(&self.api_name, AuthorizerType::Jwt)
                })
            }
            other => Err(format!("authorizer type {other:?} cannot be mapped")),
        }
    }

    /// `method.request.header.Authorization, method.request.querystring.t` (REST) or
    /// `$request.header.Authorization` (HTTP) → Causeway identity sources.
    pub(super) fn identity_sources(
        &mut self,
        v: Option<&Value>,
        scheme: &Map<String, Value>,
        at: &str,
    ) -> Vec<String> {
        let raw: Vec<String> = match v {
            Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(|s| s.trim().to_string()))
                .collect(),
            _ => {
                // REST TOKEN authorizers name their header in the scheme.
                match (
                    scheme.get("in").and_then(Value::as_str),
                    scheme.get("name").and_then(Value::as_str),
                ) {
                    (Some("header"), Some(n)) if !n.eq_ignore_ascii_case("authorization") => {
                        vec![format!("$request.header.{n}")]
                    }
                    _ => Vec::new(),
                }
            }
        };
        let mut out = Vec::new();
        for s in raw.into_iter().filter(|s| !s.is_empty()) {
            let source = if s.starts_with('$') {
                s
            } else if let Some(r) = s.strip_prefix("method.request.") {
                format!("$request.{r}")
            } else {
                format!("${s}")
            };
            if source.starts_with("$request.header.") || source.starts_with("$request.querystring.")
            {
                out.push(source);
            } else {
                self.notes.dropped(
                    at,
                    format!("identity source {source:?} is not supported (headers and query strings are); the function still receives the whole request"),
                );
            }
        }
        out
    }

    pub(super) fn route_security(&mut self, security: &Value, at: &str, spec: &mut RouteSpec) {
        let Some(alternatives) = security.as_array() else {
            self.notes
                .security(at, "`security` must be a list of requirements");
            return;
        };
        let mut chosen = None;
        for (i, alt) in alternatives.iter().enumerate() {
            let Some(o) = alt.as_object() else {
                self.notes
                    .security(&format!("{at}/{i}"), "a requirement must be a mapping");
                continue;
            };
            if o.is_empty() {
                continue;
            }
            if chosen.is_none() {
                chosen = Some((i, o));
            } else {
                self.notes.dropped(
                    &format!("{at}/{i}"),
                    "a route has one way to authorize: only the first requirement is used, so callers using this one are refused",
                );
            }
        }
        let Some((i, requirement)) = chosen else {
            return;
        };
        for (scheme_name, scopes) in requirement {
            let rat = child(&format!("{at}/{i}"), scheme_name);
            let scopes = strings(Some(scopes));
            self.used_schemes.insert(scheme_name.clone());
            match self.schemes.get(scheme_name).cloned() {
                Some(Scheme::ApiKey) => spec.api_key_required = Some(true),
                Some(Scheme::Authorizer { name, jwt }) => {
                    if let Some(existing) = &spec.authorizer_ref {
                        self.notes.security(
                            &rat,
                            format!(
                                "a route has one authorizer; {} is already required",
                                existing.name
                            ),
                        );
                        continue;
                    }
                    spec.authorizer_ref = Some(ObjectRef {
                        name,
                        namespace: None,
                    });
                    if jwt {
                        spec.authorization_scopes = scopes;
                    } else if !scopes.is_empty() {
                        self.notes
                            .security(&rat, "scopes apply to JWT and Cognito authorizers only");
                    }
                }
                Some(Scheme::Unmapped { pointer, why }) => self.notes.security(
                    &rat,
                    format!(
                        "security scheme {scheme_name:?} ({pointer}) cannot be carried over: {why}"
                    ),
                ),
                None => self.notes.security(
                    &rat,
                    format!("no security scheme named {scheme_name:?} is defined"),
                ),
            }
        }
    }
}
