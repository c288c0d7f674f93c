//! What a request is bound to, read from the request alone.
//!
//! Pure functions over the method, URI and headers, so every rule can be unit
//! tested without a network. In order:
//!
//! 1. `GET <ctx>/health` is answered by the proxy itself.
//! 2. Create Session (`POST <ctx>/rest/live/sessions`) is never bound: it
//!    makes a new session, and the node that takes it sets a new cookie that
//!    replaces any stale one.
//! 3. (CometD long-polling POSTs only, before this classification: the node
//!    the body's `clientId` names, see [`crate::cometd_route`].)
//! 4. A `gcbSessionServer` cookie, else header, else query parameter, whose
//!    value names a configured node. A value naming no configured node is
//!    ignored as if absent, so a client can never make the proxy connect
//!    anywhere it was not configured to.
//! 5. A path naming a session (`<ctx>/rest/live/sessions/{token}…`) or a user
//!    (`<ctx>/rest/live/users/{userToken}…`): the session's owner must be
//!    looked up. Malformed tokens are not looked up (the request is unbound and
//!    the node answers 404 itself).
//! 6. Anything else is unbound.
//!
//! Nothing here allocates: the cookie and query are scanned in place.
//!
//! Apart from where a request goes, [`guard_of`] says which budget it is
//! under (see [`crate::limits`]): a *token-revealing* request (any request
//! whose path names a session or a user, however it is routed: its answer
//! tells whether the token exists) is under the probe budget, Create Session
//! under the create budget, anything else under none.

use http::Method;

use crate::wire::headers::Headers;
use shared_types::names::{
    HEALTH_PATH, LIVE_PREFIX, SESSIONS_SEGMENT, SESSION_SERVER, SESSION_SERVER_HEADER,
    USERS_SEGMENT,
};
use shared_types::token::{is_session_token, session_of_user_token, SESSION_TOKEN_LEN};

/// Where a node name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The `clientId` of a CometD long-polling body.
    ClientId,
    Cookie,
    Header,
    Query,
}

/// A well-formed session token, held inline (nine ASCII digits) so that it
/// can key the owner cache without an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionToken([u8; SESSION_TOKEN_LEN]);

impl SessionToken {
    /// `Some` only for nine ASCII digits.
    pub fn parse(text: &str) -> Option<Self> {
        if !is_session_token(text) {
            return None;
        }
        let mut bytes = [0u8; SESSION_TOKEN_LEN];
        bytes.copy_from_slice(text.as_bytes());
        Some(SessionToken(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from ASCII digits.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the request is bound to. `N` is whatever the resolver returns for a
/// configured node name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<N> {
    /// The proxy's own `<ctx>/health`.
    ProxyHealth,
    /// A configured node named by the client.
    Named { node: N, via: Via },
    /// The owner of this session, to be looked up.
    Session(SessionToken),
    /// Any ready node.
    Unbound,
}

/// Which budget a request is under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Not limited (the hot path: CometD, static files, health…).
    None,
    /// `<ctx>/rest/live/sessions/{token}…` or `<ctx>/rest/live/users/{userToken}…`
    /// with a well-formed token: its answer reveals whether the token exists.
    Probe,
    /// Create Session.
    Create,
}

/// The budget `method` on `path` is under. No allocation: two prefix
/// comparisons for the requests that are under none.
pub fn guard_of(paths: &Paths, method: &Method, path: &str) -> Guard {
    if is_create(paths, method, path) {
        Guard::Create
    } else if session_of_path(paths, path).is_some() {
        Guard::Probe
    } else {
        Guard::None
    }
}

/// The request paths the proxy must recognise, computed once from the
/// context path.
#[derive(Debug, Clone)]
pub struct Paths {
    health: String,
    /// `<ctx>/rest/live/sessions`
    sessions: String,
    /// `<ctx>/rest/live/users/`
    users_prefix: String,
    /// `<ctx>/cometd`
    cometd: String,
}

impl Paths {
    /// `context_path` normalised: leading `/`, no trailing `/`, empty for root.
    pub fn new(context_path: &str) -> Self {
        Paths {
            health: format!("{context_path}{HEALTH_PATH}"),
            sessions: format!("{context_path}{LIVE_PREFIX}/{SESSIONS_SEGMENT}"),
            users_prefix: format!("{context_path}{LIVE_PREFIX}/{USERS_SEGMENT}/"),
            cometd: format!("{context_path}/cometd"),
        }
    }

    /// `<ctx>/health`
    pub fn health(&self) -> &str {
        &self.health
    }

    /// `<ctx>/rest/live/sessions`
    pub fn sessions(&self) -> &str {
        &self.sessions
    }

    /// `<ctx>/cometd`
    pub fn cometd(&self) -> &str {
        &self.cometd
    }
}

/// Classifies a request. `resolve` maps a node name to a configured node, or
/// `None` when the name is not configured.
pub fn classify<N>(
    paths: &Paths,
    method: &Method,
    path_and_query: &str,
    headers: &impl Headers,
    resolve: impl Fn(&str) -> Option<N>,
) -> Target<N> {
    let (path, query) = split_target(path_and_query);
    if (method == Method::GET || method == Method::HEAD) && path == paths.health {
        return Target::ProxyHealth;
    }
    if is_create(paths, method, path) {
        return Target::Unbound;
    }
    if let Some((node, via)) = named_node(query, headers, resolve) {
        return Target::Named { node, via };
    }
    match session_of_path(paths, path) {
        Some(token) => Target::Session(token),
        None => Target::Unbound,
    }
}

/// The path and the query of an origin-form target.
pub fn split_target(path_and_query: &str) -> (&str, &str) {
    path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""))
}

/// Create Session: `POST <ctx>/rest/live/sessions` (a trailing `/` too).
pub fn is_create(paths: &Paths, method: &Method, path: &str) -> bool {
    method == Method::POST
        && path
            .strip_prefix(paths.sessions.as_str())
            .is_some_and(|rest| rest.is_empty() || rest == "/")
}

/// The first `gcbSessionServer` value that names a configured node: cookies
/// first, then the header, then the query parameter.
pub fn named_node<N>(
    query: &str,
    headers: &impl Headers,
    resolve: impl Fn(&str) -> Option<N>,
) -> Option<(N, Via)> {
    if let Some(node) = cookie_values(headers).find_map(&resolve) {
        return Some((node, Via::Cookie));
    }
    if let Some(node) = header_values(headers).find_map(&resolve) {
        return Some((node, Via::Header));
    }
    if let Some(node) = query_values(query).find_map(&resolve) {
        return Some((node, Via::Query));
    }
    None
}

/// Values of every `gcbSessionServer` cookie, in order, across all `Cookie`
/// headers. Pairs are `;`-separated, whitespace around them is ignored and a
/// value in double quotes is unquoted (RFC 6265 `cookie-value`).
pub fn cookie_values(headers: &impl Headers) -> impl Iterator<Item = &str> {
    headers
        .values("cookie")
        .flat_map(|value| value.split(|b| *b == b';'))
        .filter_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|b| *b == b'=')?;
            let (name, value) = (&pair[..eq], &pair[eq + 1..]);
            if name.trim_ascii() != SESSION_SERVER.as_bytes() {
                return None;
            }
            let value = value.trim_ascii();
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            std::str::from_utf8(value).ok()
        })
}

/// Values of every `gcbSessionServer` request header, trimmed.
pub fn header_values(headers: &impl Headers) -> impl Iterator<Item = &str> {
    headers
        .values(SESSION_SERVER_HEADER)
        .filter_map(|value| std::str::from_utf8(value).ok())
        .map(str::trim)
}

/// Values of every `gcbSessionServer` query parameter. Values are compared
/// as they are: node names contain nothing that needs percent-encoding.
pub fn query_values(query: &str) -> impl Iterator<Item = &str> {
    query.split('&').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == SESSION_SERVER).then_some(value)
    })
}

/// The well-formed session token a path names: the `{token}` of
/// `<ctx>/rest/live/sessions/{token}[/…]`, or the session part of the
/// `{userToken}` of `<ctx>/rest/live/users/{userToken}[/…]`.
pub fn session_of_path(paths: &Paths, path: &str) -> Option<SessionToken> {
    if let Some(rest) = path.strip_prefix(paths.sessions.as_str()) {
        let token = rest.strip_prefix('/')?;
        return SessionToken::parse(first_segment(token));
    }
    let rest = path.strip_prefix(paths.users_prefix.as_str())?;
    session_of_user_token(first_segment(rest)).and_then(SessionToken::parse)
}

fn first_segment(rest: &str) -> &str {
    rest.split_once('/').map_or(rest, |(segment, _)| segment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    const NODES: [&str; 3] = ["node-1", "node-2", "Co-browse_Server"];

    fn resolve(name: &str) -> Option<&'static str> {
        NODES.iter().copied().find(|n| *n == name)
    }

    fn paths() -> Paths {
        Paths::new("/cobrowse")
    }

    fn classify_req(method: Method, uri: &str, headers: &[(&str, &str)]) -> Target<&'static str> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        classify(&paths(), &method, uri, &map, resolve)
    }

    fn named(node: &'static str, via: Via) -> Target<&'static str> {
        Target::Named { node, via }
    }

    fn session(token: &str) -> Target<&'static str> {
        Target::Session(SessionToken::parse(token).unwrap())
    }

    const USER: &str = "012345678-0123456789abcdef0123456789abcdef";

    #[test]
    fn health_is_answered_by_the_proxy_even_with_a_cookie() {
        assert_eq!(
            classify_req(
                Method::GET,
                "/cobrowse/health",
                &[("cookie", "gcbSessionServer=node-1")]
            ),
            Target::ProxyHealth
        );
        assert_eq!(
            classify_req(Method::HEAD, "/cobrowse/health", &[]),
            Target::ProxyHealth
        );
        assert_eq!(
            classify_req(Method::POST, "/cobrowse/health", &[]),
            Target::Unbound
        );
        assert_eq!(classify_req(Method::GET, "/health", &[]), Target::Unbound);
    }

    #[test]
    fn cookie_among_others() {
        let cookie = "a=1; gcbSessionServer=node-2; b=\"x;y\"";
        assert_eq!(
            classify_req(Method::GET, "/cobrowse/cometd", &[("cookie", cookie)]),
            named("node-2", Via::Cookie)
        );
        assert_eq!(
            classify_req(Method::GET, "/x", &[("cookie", "gcbSessionServer=node-1")]),
            named("node-1", Via::Cookie)
        );
        assert_eq!(
            classify_req(
                Method::GET,
                "/x",
                &[("cookie", "  gcbSessionServer = \"node-1\" ;a=b")]
            ),
            named("node-1", Via::Cookie)
        );
        // In a second Cookie header too.
        assert_eq!(
            classify_req(
                Method::GET,
                "/x",
                &[("cookie", "a=b"), ("cookie", "gcbSessionServer=node-2")]
            ),
            named("node-2", Via::Cookie)
        );
        // Names are case-sensitive, and must match whole.
        assert_eq!(
            classify_req(Method::GET, "/x", &[("cookie", "gcbsessionserver=node-1")]),
            Target::Unbound
        );
        assert_eq!(
            classify_req(Method::GET, "/x", &[("cookie", "xgcbSessionServer=node-1")]),
            Target::Unbound
        );
        assert_eq!(
            classify_req(Method::GET, "/x", &[("cookie", "gcbSessionServer")]),
            Target::Unbound
        );
        assert_eq!(
            classify_req(Method::GET, "/x", &[("cookie", ";;;=;")]),
            Target::Unbound
        );
    }

    #[test]
    fn cookie_wins_over_header_and_query() {
        assert_eq!(
            classify_req(
                Method::GET,
                "/x?gcbSessionServer=node-1",
                &[
                    ("cookie", "gcbSessionServer=node-2"),
                    ("gcbSessionServer", "node-1")
                ]
            ),
            named("node-2", Via::Cookie)
        );
    }

    #[test]
    fn header_then_query() {
        assert_eq!(
            classify_req(
                Method::GET,
                "/x?gcbSessionServer=node-1",
                &[("GcbSessionServer", " node-2 ")]
            ),
            named("node-2", Via::Header)
        );
        assert_eq!(
            classify_req(Method::GET, "/x?a=1&gcbSessionServer=node-1&b", &[]),
            named("node-1", Via::Query)
        );
        assert_eq!(
            classify_req(Method::GET, "/x?gcbSessionServer", &[]),
            Target::Unbound
        );
    }

    #[test]
    fn unknown_names_are_ignored_as_if_absent() {
        // An unknown cookie value falls through to the header…
        assert_eq!(
            classify_req(
                Method::GET,
                "/x",
                &[
                    ("cookie", "gcbSessionServer=evil.example:80"),
                    ("gcbSessionServer", "node-1")
                ]
            ),
            named("node-1", Via::Header)
        );
        // …a second cookie of the same name may still name a node…
        assert_eq!(
            classify_req(
                Method::GET,
                "/x",
                &[("cookie", "gcbSessionServer=gone; gcbSessionServer=node-1")]
            ),
            named("node-1", Via::Cookie)
        );
        // …and to the path when nothing names a node.
        assert_eq!(
            classify_req(
                Method::GET,
                "/cobrowse/rest/live/sessions/012345678?gcbSessionServer=127.0.0.1",
                &[
                    ("cookie", "gcbSessionServer=node-9"),
                    ("gcbSessionServer", "")
                ]
            ),
            session("012345678")
        );
    }

    #[test]
    fn session_and_user_paths_are_looked_up() {
        assert_eq!(
            classify_req(Method::GET, "/cobrowse/rest/live/sessions/012345678", &[]),
            session("012345678")
        );
        assert_eq!(
            classify_req(
                Method::POST,
                "/cobrowse/rest/live/sessions/012345678/users",
                &[]
            ),
            session("012345678")
        );
        assert_eq!(
            classify_req(
                Method::GET,
                &format!("/cobrowse/rest/live/users/{USER}/session/stop"),
                &[]
            ),
            session("012345678")
        );
        assert_eq!(
            classify_req(
                Method::GET,
                &format!("/cobrowse/rest/live/users/{USER}"),
                &[]
            ),
            session("012345678")
        );
    }

    #[test]
    fn named_node_wins_over_path() {
        assert_eq!(
            classify_req(
                Method::GET,
                "/cobrowse/rest/live/sessions/012345678",
                &[("cookie", "gcbSessionServer=node-1")]
            ),
            named("node-1", Via::Cookie)
        );
    }

    #[test]
    fn malformed_tokens_are_not_looked_up() {
        for path in [
            "/cobrowse/rest/live/sessions/12345678",
            "/cobrowse/rest/live/sessions/1234567890",
            "/cobrowse/rest/live/sessions/12345678a",
            "/cobrowse/rest/live/sessions/",
            "/cobrowse/rest/live/sessions//012345678",
            "/cobrowse/rest/live/sessionsX/012345678",
            "/cobrowse/rest/live/users/012345678",
            "/cobrowse/rest/live/users/012345678-0123456789ABCDEF0123456789ABCDEF/session/stop",
            "/cobrowse/rest/live/users/012345678-abc/session/stop",
            "/other/rest/live/sessions/012345678",
            "/cobrowse/rest/live/sessions/%30%31%32%33%34%35%36%37%38",
        ] {
            assert_eq!(
                classify_req(Method::GET, path, &[]),
                Target::Unbound,
                "{path}"
            );
        }
    }

    #[test]
    fn create_is_never_bound() {
        for path in [
            "/cobrowse/rest/live/sessions",
            "/cobrowse/rest/live/sessions/",
        ] {
            assert_eq!(
                classify_req(
                    Method::POST,
                    &format!("{path}?gcbSessionServer=node-1"),
                    &[
                        ("cookie", "gcbSessionServer=node-1"),
                        ("gcbSessionServer", "node-2")
                    ]
                ),
                Target::Unbound,
                "{path}"
            );
        }
        // A GET of the collection is not a create: the cookie applies.
        assert_eq!(
            classify_req(
                Method::GET,
                "/cobrowse/rest/live/sessions",
                &[("cookie", "gcbSessionServer=node-1")]
            ),
            named("node-1", Via::Cookie)
        );
    }

    #[test]
    fn root_context_path() {
        let paths = Paths::new("");
        let uri = "/rest/live/sessions/012345678";
        assert_eq!(
            classify(&paths, &Method::GET, uri, &HeaderMap::new(), resolve),
            session("012345678")
        );
        let health = "/health";
        assert_eq!(
            classify(&paths, &Method::GET, health, &HeaderMap::new(), resolve),
            Target::ProxyHealth
        );
        assert!(is_create(&paths, &Method::POST, "/rest/live/sessions"));
    }

    #[test]
    fn non_utf8_cookie_bytes_are_skipped() {
        let mut map = HeaderMap::new();
        map.append(
            http::header::COOKIE,
            HeaderValue::from_bytes(b"gcbSessionServer=\xff\xfe; gcbSessionServer=node-1").unwrap(),
        );
        let uri = "/x";
        assert_eq!(
            classify(&paths(), &Method::GET, uri, &map, resolve),
            named("node-1", Via::Cookie)
        );
    }

    #[test]
    fn guards() {
        let p = paths();
        // (method, path, guard)
        let cases: &[(Method, String, Guard)] = &[
            (
                Method::POST,
                "/cobrowse/rest/live/sessions".into(),
                Guard::Create,
            ),
            (
                Method::POST,
                "/cobrowse/rest/live/sessions/".into(),
                Guard::Create,
            ),
            (
                Method::GET,
                "/cobrowse/rest/live/sessions".into(),
                Guard::None,
            ),
            (
                Method::GET,
                "/cobrowse/rest/live/sessions/012345678".into(),
                Guard::Probe,
            ),
            (
                Method::POST,
                "/cobrowse/rest/live/sessions/012345678/users".into(),
                Guard::Probe,
            ),
            (
                Method::GET,
                format!("/cobrowse/rest/live/users/{USER}/session/stop"),
                Guard::Probe,
            ),
            (
                Method::GET,
                "/cobrowse/rest/live/sessions/12345".into(),
                Guard::None,
            ),
            (Method::GET, "/cobrowse/cometd".into(), Guard::None),
            (Method::GET, "/cobrowse/health".into(), Guard::None),
        ];
        for (method, path, want) in cases {
            assert_eq!(guard_of(&p, method, path), *want, "{method} {path}");
        }
    }

    #[test]
    fn session_tokens_round_trip() {
        let token = SessionToken::parse("000000042").unwrap();
        assert_eq!(token.as_str(), "000000042");
        assert_eq!(token.to_string(), "000000042");
        assert!(SessionToken::parse("42").is_none());
    }
}
