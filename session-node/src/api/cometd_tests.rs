//! The two Bayeux transports over real HTTP and WebSocket: cookies on the
//! handshake, JSON errors for bad long-polling bodies, a whole session over
//! WebSocket.

use std::time::Duration;

use serde_json::{json, Value};
use shared_types::bayeux::*;

use crate::cometd::BayeuxConfig;
use crate::test_support::{access_config, agent_jwt};

mod over_http {
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::api::app;
    use crate::config::Config;
    use crate::state::AppState;

    async fn post(
        state: &AppState,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = app(state.clone())
            .oneshot(
                Request::post(path)
                    .header(header::CONTENT_TYPE, content_type)
                    .body(Body::from(body.to_owned()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn long_polling_handshake_sets_the_cookie() {
        let state = AppState::new(&Config::default()).unwrap();
        let (status, headers, body) = post(
            &state,
            "/cobrowse/cometd/handshake",
            "application/json;charset=UTF-8",
            r#"[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"id":"1"}]"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body[0]["successful"], true);
        assert!(headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .starts_with("gcbSessionServer=node-1"));
        let client = body[0]["clientId"].as_str().unwrap();
        let (_, headers, body) = post(
            &state,
            "/cobrowse/cometd/connect",
            "application/json",
            &json!([{"channel": "/meta/connect", "clientId": client, "connectionType": "long-polling", "advice": {"timeout": 0}}]).to_string(),
        )
        .await;
        assert_eq!(body[0]["successful"], true);
        assert!(headers.get(header::SET_COOKIE).is_none());
    }

    #[tokio::test]
    async fn bad_long_polling_bodies_get_json_errors() {
        let state = AppState::new(&Config::default()).unwrap();
        let (status, _, body) = post(&state, "/cobrowse/cometd", "text/plain", "[]").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some("unsupported_media_type")
            )
        );
        let (status, _, body) = post(&state, "/cobrowse/cometd", "application/json", "{nope").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_json"))
        );
        let big = format!(
            "[{{\"channel\":\"/x\",\"data\":\"{}\"}}]",
            "a".repeat(MAX_BATCH_BYTES_FOR_TEST)
        );
        let (status, _, _) = post(&state, "/cobrowse/cometd", "application/json", &big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    const MAX_BATCH_BYTES_FOR_TEST: usize = crate::api::cometd::MAX_BATCH_BYTES;

    #[tokio::test]
    async fn a_plain_get_is_told_to_upgrade() {
        let state = AppState::new(&Config::default()).unwrap();
        let response = app(state)
            .oneshot(
                Request::get("/cobrowse/cometd")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}

mod over_websocket {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Frame;

    use super::*;
    use crate::config::Config;

    async fn start() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Config {
            bayeux: BayeuxConfig {
                timeout: Duration::from_millis(300),
                ..BayeuxConfig::default()
            },
            access: access_config(),
            allowed_origins: crate::cors::AllowedOrigins::parse("http://shop.example").unwrap(),
            ..Config::default()
        };
        tokio::spawn(crate::serve(listener, config, std::future::pending()));
        addr
    }

    #[tokio::test]
    async fn a_websocket_from_a_page_of_another_origin_is_refused() {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let addr = start().await;
        let url = format!("ws://{addr}/cobrowse/cometd");
        // (Origin header, upgraded)
        for (origin, upgraded) in [
            (Some("http://shop.example"), true),
            (None, true),
            (Some("http://evil.example"), false),
            (Some("http://shop.example.evil.example"), false),
        ] {
            let mut request = url.as_str().into_client_request().unwrap();
            if let Some(origin) = origin {
                request
                    .headers_mut()
                    .insert("origin", origin.parse().unwrap());
            }
            match tokio_tungstenite::connect_async(request).await {
                Ok(_) => assert!(upgraded, "{origin:?} was upgraded"),
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    assert!(!upgraded, "{origin:?} was refused");
                    assert_eq!(response.status(), 403, "{origin:?}");
                }
                Err(other) => panic!("{origin:?}: {other}"),
            }
        }
    }

    type Socket = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    async fn exchange(socket: &mut Socket, batch: Value) -> Vec<Value> {
        socket.send(Frame::text(batch.to_string())).await.unwrap();
        receive(socket).await
    }

    async fn receive(socket: &mut Socket) -> Vec<Value> {
        let frame = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        serde_json::from_str(frame.to_text().unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_session_over_websocket() {
        let addr = start().await;
        let url = format!("ws://{addr}/cobrowse/cometd");
        let (mut customer, response) = tokio_tungstenite::connect_async(&url).await.unwrap();
        assert!(response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("gcbSessionServer=node-1"));
        let (mut agent, _) = tokio_tungstenite::connect_async(&url).await.unwrap();

        let hs = json!([{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["websocket"]}]);
        let c = exchange(&mut customer, hs.clone()).await[0]["clientId"]
            .as_str()
            .unwrap()
            .to_owned();
        let a = exchange(&mut agent, hs).await[0]["clientId"]
            .as_str()
            .unwrap()
            .to_owned();
        let created = exchange(
            &mut customer,
            json!([{"channel": SERVICE_CREATE, "clientId": c, "data": {}}]),
        )
        .await;
        let token = created[0]["data"]["sessionToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let key = created[0]["data"]["customerKey"].clone();
        let channel = session_data_channel(&token);
        exchange(&mut customer, json!([{"channel": SERVICE_JOIN, "clientId": c, "data": {"sessionToken": token, "role": 1, "customerKey": key}}])).await;
        let joined = exchange(&mut agent, json!([
            {"channel": SERVICE_JOIN, "clientId": a, "data": {"sessionToken": token, "role": 2, "agentToken": agent_jwt("ann", None, None)}},
            {"channel": META_SUBSCRIBE, "clientId": a, "subscription": channel},
        ]))
        .await;
        assert_eq!(joined[0]["data"]["userId"], 2, "{joined:?}");
        assert_eq!(joined[1]["successful"], true, "{joined:?}");
        assert_eq!(joined[2]["subscription"], channel.as_str(), "{joined:?}");

        // The customer hears of the agent without asking.
        let mut heard = Vec::new();
        while heard.len() < 2 {
            heard.extend(receive(&mut customer).await);
        }
        assert_eq!(heard[0]["channel"], SERVICE_JOINED);
        assert_eq!(heard[1]["channel"], SERVICE_ACTIVATED);

        // The first connect is answered at once, without advice.
        let first = exchange(
            &mut customer,
            json!([{"channel": META_CONNECT, "clientId": c, "connectionType": "websocket"}]),
        )
        .await;
        assert_eq!(first[0]["channel"], META_CONNECT);
        assert_eq!(first[0]["successful"], true);

        // A later connect is held (300 ms here) while data flows past it.
        customer
            .send(Frame::text(
                json!([{"channel": META_CONNECT, "clientId": c, "connectionType": "websocket"}])
                    .to_string(),
            ))
            .await
            .unwrap();
        for i in 0..3 {
            let ack = exchange(
                &mut customer,
                json!([{"channel": channel, "clientId": c, "data": {"seq": i}}]),
            )
            .await;
            assert_eq!(ack[0]["successful"], true);
        }
        let mut seqs = Vec::new();
        while seqs.len() < 3 {
            for m in receive(&mut agent).await {
                if m["channel"] == channel.as_str() {
                    seqs.push(m["data"]["seq"].as_i64().unwrap());
                }
            }
        }
        assert_eq!(seqs, vec![0, 1, 2]);
        let connect_reply = receive(&mut customer).await;
        assert_eq!(connect_reply[0]["channel"], META_CONNECT);
        assert_eq!(connect_reply[0]["successful"], true);
    }
}
