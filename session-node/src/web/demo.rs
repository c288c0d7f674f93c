//! `session-node demo-site`: a small demo shop that includes the widget with
//! the one tag a website adds. `make run` serves it on its own port (another
//! origin, and another site, than the proxy), so trying it exercises the
//! cross-site path a real deployment has.
//!
//! The pages are `web/demo/`, compiled in; the widget's URL is a flag,
//! checked to be an http(s) URL and escaped into the page.

use std::future::Future;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use shared_types::error::{codes, ErrorBody};
use tokio::net::TcpListener;
use url::Url;

const INDEX: &str = include_str!("../../../web/demo/index.html");
const SHOP_JS: &str = include_str!("../../../web/demo/shop.js");
const SHOP_CSS: &str = include_str!("../../../web/demo/shop.css");
/// Where the widget's URL goes in `index.html`.
const WIDGET_URL_SLOT: &str = "{{WIDGET_URL}}";

/// The demo shop's pages, rendered once.
#[derive(Debug, Clone)]
pub struct DemoSite {
    index: String,
    csp: HeaderValue,
}

impl DemoSite {
    /// The shop with `<script src="{widget_url}" async>`.
    pub fn new(widget_url: &str) -> Result<DemoSite, String> {
        let url = Url::parse(widget_url).map_err(|e| format!("--widget-url {widget_url}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "--widget-url {widget_url}: must be an http(s) URL, such as http://127.0.0.1:8700/cobrowse/widget.js"
            ));
        }
        let origin = url.origin().ascii_serialization();
        // What a shop with a strict policy must allow: the widget's script
        // and its calls to the co-browse origin; nothing inline (the widget
        // styles itself with a constructed stylesheet).
        let csp = HeaderValue::from_str(&format!(
            "default-src 'self'; script-src 'self' {origin}; connect-src 'self' {origin}; \
             style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
        ))
        .map_err(|e| format!("--widget-url {widget_url}: {e}"))?;
        Ok(DemoSite {
            index: INDEX.replace(WIDGET_URL_SLOT, &escape_attribute(url.as_str())),
            csp,
        })
    }

    /// The shop's router: `/`, `/shop.js`, `/shop.css`, JSON 404 otherwise.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(index))
            .route(
                "/shop.js",
                get(|| async { asset("text/javascript; charset=utf-8", SHOP_JS) }),
            )
            .route(
                "/shop.css",
                get(|| async { asset("text/css; charset=utf-8", SHOP_CSS) }),
            )
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    Json(ErrorBody::new(
                        codes::NOT_FOUND,
                        "no such page in the demo shop",
                    )),
                )
            })
            .with_state(self)
    }
}

async fn index(State(site): State<DemoSite>) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        site.index.clone(),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, site.csp.clone());
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Serves the shop on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    site: DemoSite,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!("demo shop listening on {}", listener.local_addr()?);
    axum::serve(listener, site.router())
        .with_graceful_shutdown(shutdown)
        .await
}

fn escape_attribute(raw: &str) -> String {
    raw.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get_page(site: &DemoSite, path: &str) -> (StatusCode, String, Option<String>) {
        let response = site
            .clone()
            .router()
            .oneshot(axum::http::Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let csp = response
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap(), csp)
    }

    #[tokio::test]
    async fn the_page_carries_the_one_tag_and_allows_the_widget_origin() {
        let site = DemoSite::new("http://127.0.0.1:8700/cobrowse/widget.js").unwrap();
        let (status, body, csp) = get_page(&site, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains(
                r#"<script src="http://127.0.0.1:8700/cobrowse/widget.js" async></script>"#
            ),
            "{body}"
        );
        let csp = csp.unwrap();
        assert!(
            csp.contains("script-src 'self' http://127.0.0.1:8700;"),
            "{csp}"
        );
        assert_eq!(get_page(&site, "/shop.js").await.0, StatusCode::OK);
        let (status, body, _) = get_page(&site, "/../etc/passwd").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("not_found"));
    }

    #[test]
    fn widget_urls_are_checked_and_escaped() {
        // (flag, accepted)
        let cases = [
            ("http://127.0.0.1:8700/cobrowse/widget.js", true),
            ("https://cobrowse.example.com/cobrowse/widget.js", true),
            ("javascript:alert(1)", false),
            ("file:///etc/passwd", false),
            ("not a url", false),
        ];
        for (flag, accepted) in cases {
            assert_eq!(DemoSite::new(flag).is_ok(), accepted, "{flag}");
        }
        let site = DemoSite::new("http://127.0.0.1:8700/w.js?a=1&b=\"><script>").unwrap();
        assert!(!site.index.contains("\"><script>"));
    }
}
