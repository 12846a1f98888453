//! Registry authentication decisions, pure: reading a `WWW-Authenticate` challenge and
//! forming the token request of the Docker token flow (the distribution spec's Bearer
//! scheme). Written here because it is two small grammars; the HTTP happens in `registry`.

/// What a registry asks for on a 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Reads a `WWW-Authenticate` value (`Basic realm="x"` or `Bearer realm="…",service="…",
/// scope="…"`); `None` for schemes we do not speak.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: get("realm").filter(|realm| !realm.is_empty())?,
            service: get("service"),
            scope: get("scope"),
        })
    } else {
        None
    }
}

/// `key=value` or `key="quoted, value"` pairs separated by commas.
fn parse_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_owned();
        if key.is_empty() {
            return params;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_owned();
        }
        params.push((key, value));
    }
}

/// The scopes a squash needs: push and pull on the target, pull on the base's repository
/// (for cross-repository mounts), plus whatever scope the challenge named.
pub(crate) fn scopes(target: &str, sources: &[&str], challenged: Option<&str>) -> Vec<String> {
    let mut scopes = vec![format!("repository:{target}:pull,push")];
    for source in sources {
        if *source != target {
            scopes.push(format!("repository:{source}:pull"));
        }
    }
    if let Some(scope) = challenged
        && !scopes.iter().any(|s| s == scope)
    {
        scopes.push(scope.to_owned());
    }
    scopes
}

/// The token endpoint's URL for `realm` (`?service=…&scope=…&scope=…`).
pub(crate) fn token_url(
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
) -> Result<url::Url, url::ParseError> {
    let mut url = url::Url::parse(realm)?;
    {
        let mut query = url.query_pairs_mut();
        if let Some(service) = service {
            query.append_pair("service", service);
        }
        for scope in scopes {
            query.append_pair("scope", scope);
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_read() {
        let bearer = |realm: &str, service: Option<&str>, scope: Option<&str>| {
            Some(Challenge::Bearer {
                realm: realm.into(),
                service: service.map(Into::into),
                scope: scope.map(Into::into),
            })
        };
        for (header, expected) in [
            (r#"Basic realm="Registry Realm""#, Some(Challenge::Basic)),
            ("basic", Some(Challenge::Basic)),
            (
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
                bearer(
                    "https://auth.example/token",
                    Some("registry.example"),
                    Some("repository:a/b:pull,push"),
                ),
            ),
            (
                r#"Bearer realm=https://auth.example/token, service="r\"x""#,
                bearer("https://auth.example/token", Some("r\"x"), None),
            ),
            (r#"Bearer service="x""#, None),
            (r#"Negotiate abc"#, None),
            ("", None),
        ] {
            assert_eq!(parse_challenge(header), expected, "{header}");
        }
    }

    #[test]
    fn token_requests_name_every_scope_once() {
        let scopes = scopes(
            "ns/app",
            &["ns/base", "ns/app"],
            Some("repository:ns/app:pull,push"),
        );
        assert_eq!(
            scopes,
            ["repository:ns/app:pull,push", "repository:ns/base:pull"]
        );
        let url = token_url("https://auth.example/token?x=1", Some("reg"), &scopes).unwrap();
        assert_eq!(
            url.as_str(),
            "https://auth.example/token?x=1&service=reg&scope=repository%3Ans%2Fapp%3Apull%2Cpush&scope=repository%3Ans%2Fbase%3Apull"
        );
        assert!(token_url("not a url", None, &scopes).is_err());
    }
}
