//! Names and paths both the node and the proxy must agree on.

/// The cookie a node sets to name itself; also the request/response header and
/// the query parameter that carry the same value when cookies are blocked.
pub const SESSION_SERVER: &str = "gcbSessionServer";

/// Lower-case form of [`SESSION_SERVER`] for header lookups (HTTP header names
/// are case-insensitive and `http` stores them lower-cased).
pub const SESSION_SERVER_HEADER: &str = "gcbsessionserver";

/// Default context path of the co-browse application.
pub const DEFAULT_CONTEXT_PATH: &str = "/cobrowse";

/// Sub-path of the live REST resources, below the context path.
pub const LIVE_PREFIX: &str = "/rest/live";

/// Health resource, directly below the context path (not below `/rest/live`).
pub const HEALTH_PATH: &str = "/health";

/// Header on every health answer: how many live sessions the node holds, so
/// a proxy retiring a node knows when it has none left.
pub const LIVE_SESSIONS_HEADER: &str = "cobrowse-live-sessions";

/// `<context>/rest/live/sessions`
pub const SESSIONS_SEGMENT: &str = "sessions";

/// `<context>/rest/live/users`
pub const USERS_SEGMENT: &str = "users";

/// Normalises a context path: leading `/`, no trailing `/`; the root context
/// is the empty string.
pub fn normalize_context_path(raw: &str) -> String {
    let trimmed = raw.trim().trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_path_is_normalised() {
        assert_eq!(normalize_context_path("/cobrowse"), "/cobrowse");
        assert_eq!(normalize_context_path("cobrowse/"), "/cobrowse");
        assert_eq!(normalize_context_path("/"), "");
        assert_eq!(normalize_context_path(""), "");
        assert_eq!(normalize_context_path("/a/b/"), "/a/b");
    }
}
