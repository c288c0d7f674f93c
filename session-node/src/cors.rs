//! Which web origins may call the API.
//!
//! Get Session is under CORS control (the contract): the request must carry an
//! `Origin`, or else a `Referer`, whose origin (scheme, host, port) is allowed
//! by `--allowed-origins`. Every other API answer also carries the CORS headers
//! when the caller's origin is allowed, so a browser page can use the whole API.
//!
//! Patterns: `*` allows every origin, and then answers carry
//! `Access-Control-Allow-Origin: *` without `Access-Control-Allow-Credentials`
//! (reflecting any origin *with* credentials would let every page on the web
//! act with the visitor's cookies; browsers and Spring refuse the pair too);
//! `https://*.example.com` allows any
//! subdomain of `example.com` over https on the default port, but neither
//! `https://example.com` itself nor a look-alike such as
//! `https://example.com.evil.net`; anything else must match exactly.

use axum::http::{header, HeaderMap, HeaderValue};
use url::Url;

/// A request origin, normalised: scheme, lower-case host, port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
    /// The form echoed back in `Access-Control-Allow-Origin`.
    serialized: String,
}

impl Origin {
    /// Parses the origin of a URL (`Origin` header values are URLs with no path;
    /// `Referer` values are full URLs). Opaque origins such as `null` or
    /// `file:` have none.
    pub fn of_url(raw: &str) -> Option<Origin> {
        let url = Url::parse(raw).ok()?;
        let origin = url.origin();
        if !origin.is_tuple() {
            return None;
        }
        Some(Origin {
            scheme: url.scheme().to_owned(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
            serialized: origin.ascii_serialization(),
        })
    }

    /// The origin a request comes from: its `Origin` header, or else the
    /// origin of its `Referer`.
    pub fn of_request(headers: &HeaderMap) -> Option<Origin> {
        if let Some(origin) = headers.get(header::ORIGIN) {
            return Origin::of_url(origin.to_str().ok()?);
        }
        Origin::of_url(headers.get(header::REFERER)?.to_str().ok()?)
    }

    pub fn as_str(&self) -> &str {
        &self.serialized
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Any,
    Exact(Origin),
    /// `scheme://*.suffix[:port]`: `host` must end with `.suffix`.
    Subdomains {
        scheme: String,
        suffix: String,
        port: u16,
    },
}

/// The allowed origins of this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<Pattern>);

impl AllowedOrigins {
    /// Parses a comma-separated list; empty entries are skipped.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(Self::parse_one)
            .collect::<Result<Vec<_>, _>>()
            .map(AllowedOrigins)
    }

    fn parse_one(entry: &str) -> Result<Pattern, String> {
        if entry == "*" {
            return Ok(Pattern::Any);
        }
        if let Some((scheme, rest)) = entry.split_once("://*.") {
            // Parse with a placeholder label so the url crate validates the
            // rest (host characters, port) for us.
            let probe = Origin::of_url(&format!("{scheme}://x.{rest}"))
                .ok_or_else(|| format!("not an origin pattern: {entry}"))?;
            let suffix = probe
                .host
                .strip_prefix('x')
                .filter(|s| s.len() > 1)
                .ok_or_else(|| format!("not an origin pattern: {entry}"))?;
            return Ok(Pattern::Subdomains {
                scheme: probe.scheme,
                suffix: suffix.to_owned(),
                port: probe.port,
            });
        }
        Origin::of_url(entry)
            .map(Pattern::Exact)
            .ok_or_else(|| format!("not an origin: {entry}"))
    }

    pub fn allows(&self, origin: &Origin) -> bool {
        self.0.iter().any(|pattern| match pattern {
            Pattern::Any => true,
            Pattern::Exact(allowed) => {
                allowed.scheme == origin.scheme
                    && allowed.host == origin.host
                    && allowed.port == origin.port
            }
            Pattern::Subdomains {
                scheme,
                suffix,
                port,
            } => {
                *scheme == origin.scheme
                    && *port == origin.port
                    && origin.host.len() > suffix.len()
                    && origin.host.ends_with(suffix.as_str())
            }
        })
    }

    /// Whether some allowed origin may be another site than the node's own
    /// host (`own_host`, from `--server-url`; without one, loopback origins
    /// count as the node's own).
    pub fn may_be_cross_site(&self, own_host: Option<&str>) -> bool {
        let own = |host: &str| match own_host {
            Some(own) => host.eq_ignore_ascii_case(own),
            None => {
                host == "localhost"
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        };
        self.0.iter().any(|pattern| match pattern {
            Pattern::Any => true,
            Pattern::Exact(origin) => !own(&origin.host),
            Pattern::Subdomains { suffix, .. } => {
                own_host.is_none_or(|host| !host.to_ascii_lowercase().ends_with(suffix.as_str()))
            }
        })
    }

    /// Whether `*` is among the patterns.
    pub fn is_any(&self) -> bool {
        self.0.contains(&Pattern::Any)
    }

    /// The request's origin if it is present and allowed.
    pub fn check(&self, headers: &HeaderMap) -> Option<Origin> {
        Origin::of_request(headers).filter(|origin| self.allows(origin))
    }
}

/// Headers on any answer to an allowed origin: that origin with
/// credentials, or `*` without them when every origin is allowed.
pub fn add_cors_headers(headers: &mut HeaderMap, origin: &Origin, allowed: &AllowedOrigins) {
    if allowed.is_any() {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else {
        if let Ok(value) = HeaderValue::from_str(origin.as_str()) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        }
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(shared_types::names::SESSION_SERVER),
    );
}

/// Extra headers on a preflight answer.
pub fn add_preflight_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Authorization, gcbSessionServer"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(s: &str) -> Origin {
        Origin::of_url(s).unwrap()
    }

    #[test]
    fn exact_origins_match_scheme_host_and_port() {
        let allowed =
            AllowedOrigins::parse("https://shop.example.com, http://localhost:3000").unwrap();
        assert!(allowed.allows(&origin("https://shop.example.com")));
        assert!(allowed.allows(&origin("https://SHOP.example.com:443")));
        assert!(allowed.allows(&origin("http://localhost:3000")));
        assert!(!allowed.allows(&origin("http://shop.example.com")));
        assert!(!allowed.allows(&origin("https://shop.example.com:8443")));
        assert!(!allowed.allows(&origin("http://localhost:3001")));
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let allowed = AllowedOrigins::parse("https://*.example.com").unwrap();
        assert!(allowed.allows(&origin("https://a.example.com")));
        assert!(allowed.allows(&origin("https://a.b.example.com")));
        assert!(!allowed.allows(&origin("https://example.com")));
        assert!(!allowed.allows(&origin("https://example.com.evil.net")));
        assert!(!allowed.allows(&origin("https://evilexample.com")));
        assert!(!allowed.allows(&origin("http://a.example.com")));
        assert!(!allowed.allows(&origin("https://a.example.com:8443")));
    }

    #[test]
    fn star_allows_all_and_empty_allows_none() {
        assert!(AllowedOrigins::parse("*")
            .unwrap()
            .allows(&origin("http://x.y")));
        assert!(!AllowedOrigins::parse("")
            .unwrap()
            .allows(&origin("http://x.y")));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(AllowedOrigins::parse("not a url").is_err());
        assert!(AllowedOrigins::parse("https://*.").is_err());
    }

    #[test]
    fn referer_counts_when_origin_is_absent() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::REFERER,
            HeaderValue::from_static("https://shop.example.com/cart?x=1"),
        );
        let o = Origin::of_request(&headers).unwrap();
        assert_eq!(o.as_str(), "https://shop.example.com");
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert_eq!(
            Origin::of_request(&headers),
            None,
            "Origin wins, even when opaque"
        );
    }

    #[test]
    fn cross_site_origins_are_told_apart_from_the_nodes_own() {
        // (allowed, the node's host, may be cross-site)
        let cases = [
            ("http://127.0.0.1:8700, http://localhost:8700", None, false),
            ("https://shop.example.com", None, true),
            (
                "https://cobrowse.example.com",
                Some("cobrowse.example.com"),
                false,
            ),
            (
                "https://shop.example.com",
                Some("cobrowse.example.com"),
                true,
            ),
            ("https://*.example.com", Some("cobrowse.example.com"), false),
            ("*", Some("cobrowse.example.com"), true),
            ("", None, false),
        ];
        for (list, own, want) in cases {
            let allowed = AllowedOrigins::parse(list).unwrap();
            assert_eq!(allowed.may_be_cross_site(own), want, "{list} on {own:?}");
        }
    }
}
