//! The `gcbSessionServer` cookie and header: how a node tells a load balancer
//! (and a client whose third-party cookies are blocked) that it owns a session.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use cookie::{Cookie, SameSite};
use shared_types::names::{SESSION_SERVER, SESSION_SERVER_HEADER};

/// The two headers set on Create and Join answers, built once at start-up.
#[derive(Debug, Clone)]
pub struct Stickiness {
    set_cookie: HeaderValue,
    node_name: HeaderValue,
}

impl Stickiness {
    /// `cross_site` asks for `SameSite=None; Secure`, which browsers require
    /// before they send a cookie on cross-site requests; otherwise the cookie
    /// is `SameSite=Lax`.
    pub fn new(node_name: &str, context_path: &str, cross_site: bool) -> Result<Self, String> {
        let path = if context_path.is_empty() {
            "/"
        } else {
            context_path
        };
        let mut cookie = Cookie::build((SESSION_SERVER, node_name))
            .path(path)
            .http_only(true);
        cookie = if cross_site {
            cookie.same_site(SameSite::None).secure(true)
        } else {
            cookie.same_site(SameSite::Lax)
        };
        let set_cookie = HeaderValue::from_str(&cookie.build().to_string())
            .map_err(|_| format!("node name {node_name:?} cannot be sent in a cookie"))?;
        let node_name = HeaderValue::from_str(node_name)
            .map_err(|_| format!("node name {node_name:?} cannot be sent in a header"))?;
        Ok(Self {
            set_cookie,
            node_name,
        })
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.append(header::SET_COOKIE, self.set_cookie.clone());
        headers.insert(
            HeaderName::from_static(SESSION_SERVER_HEADER),
            self.node_name.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie_of(s: &Stickiness) -> String {
        let mut headers = HeaderMap::new();
        s.apply(&mut headers);
        assert_eq!(headers[SESSION_SERVER_HEADER], "node-1");
        headers[header::SET_COOKIE].to_str().unwrap().to_owned()
    }

    #[test]
    fn same_site_lax_by_default() {
        let c = cookie_of(&Stickiness::new("node-1", "/cobrowse", false).unwrap());
        assert_eq!(
            c,
            "gcbSessionServer=node-1; HttpOnly; SameSite=Lax; Path=/cobrowse"
        );
    }

    #[test]
    fn same_site_none_and_secure_for_cross_site() {
        let c = cookie_of(&Stickiness::new("node-1", "", true).unwrap());
        assert!(c.contains("SameSite=None"), "{c}");
        assert!(c.contains("Secure"), "{c}");
        assert!(c.contains("Path=/"), "{c}");
    }

    #[test]
    fn names_that_break_headers_are_refused() {
        assert!(Stickiness::new("bad\nname", "/", false).is_err());
    }
}
