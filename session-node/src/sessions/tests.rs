use std::net::IpAddr;

use ::access::agent::{mint, MintRequest};
use ::access::Budget;

use super::access::{AccessConfig, AgentAuth, Credential};
use super::*;
use crate::test_support::{access_config, access_with, agent_credential as agent_token};
use shared_types::api::JoinRequest;

fn limits() -> SessionLimits {
    SessionLimits {
        max_sessions: 3,
        max_users_per_session: 3,
        idle_timeout: Duration::from_secs(60),
        retention: Duration::from_secs(600),
        token_partition: TokenPartition::WHOLE,
        insecure_token_seed: None,
    }
}

fn sessions() -> Sessions {
    Sessions::new(limits(), &access_config())
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, last])
}

/// A caller from address `.1` with an agent credential for any session.
fn agent(s: &Sessions) -> Caller {
    s.caller(ip(1), Some(&agent_token("ann", None, None)))
}

fn anonymous(s: &Sessions) -> Caller {
    s.caller(ip(1), None)
}

fn join(role: Role, customer_key: Option<&str>) -> JoinRequest {
    JoinRequest {
        role,
        name: None,
        customer_key: customer_key.map(str::to_owned),
    }
}

#[test]
fn tokens_are_nine_digits_and_unique() {
    let s = Sessions::new(SessionLimits::default(), &access_config());
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let created = s.create(&anonymous(&s), true).unwrap();
        assert!(token::is_session_token(&created.token), "{}", created.token);
        assert_eq!(created.customer_key.len(), 32, "128 bits in hex");
        assert!(seen.insert(created.token));
    }
    assert_eq!(s.live_count(), 1000);
}

#[test]
fn a_forced_draw_never_gives_two_sessions_one_token() {
    let s = Sessions::with_tokens(
        limits(),
        &access_config(),
        TokenSource::with_draw(TokenPartition::WHOLE, |_| 42),
    );
    let first = s.create(&anonymous(&s), true).unwrap();
    assert_eq!(first.token, "000000042");
    assert_eq!(
        s.create(&anonymous(&s), true),
        Err(SessionError::CapacityExhausted),
        "the same draw again is refused, not a second holder"
    );
}

#[test]
fn first_agent_side_join_activates() {
    let s = sessions();
    let created = s.create(&anonymous(&s), true).unwrap();
    let t = created.token.clone();
    let customer = s
        .join(
            &anonymous(&s),
            &t,
            join(Role::Customer, Some(&created.customer_key)),
        )
        .unwrap();
    assert_eq!(customer.user_id, 1);
    let controller = s
        .join(&agent(&s), &t, join(Role::Controller, None))
        .unwrap();
    assert_eq!(controller.users.len(), 2);
    assert_eq!(controller.users[1].agent_id.as_deref(), Some("ann"));
    let stopped = s.stop(&agent(&s), &controller.user_token).unwrap();
    assert!(stopped.activation_time.is_some());
    assert!(stopped.deactivation_time >= stopped.activation_time.unwrap());
    assert_eq!(s.stop(&agent(&s), &controller.user_token).unwrap(), stopped);
    assert_eq!(s.touch(&t), Err(SessionError::Ended));
    assert_eq!(
        s.join(&agent(&s), &t, join(Role::Agent, None)).unwrap_err(),
        SessionError::Ended
    );
    assert_eq!(
        s.stop(&anonymous(&s), &customer.user_token).unwrap_err(),
        SessionError::NotController
    );
}

#[test]
fn join_rules() {
    let s = sessions();
    let created = s.create(&anonymous(&s), true).unwrap();
    let t = created.token.clone();
    let key = created.customer_key.clone();
    let other_session = if t == "000000001" {
        "000000002"
    } else {
        "000000001"
    };
    let expired = Credential::new(
        mint(
            b"another-secret-another-secret-xx",
            &MintRequest {
                sub: "eve",
                ttl: Duration::from_secs(60),
                session_token: None,
                roles: None,
            },
        )
        .unwrap(),
    );
    // (case, credential, request, expected error)
    let cases: Vec<(&str, Option<Credential>, JoinRequest, SessionError)> = vec![
        (
            "agent without credential",
            None,
            join(Role::Agent, None),
            SessionError::AgentAuthRequired,
        ),
        (
            "controller without credential",
            None,
            join(Role::Controller, None),
            SessionError::AgentAuthRequired,
        ),
        (
            "agent with another key's credential",
            Some(expired),
            join(Role::Agent, None),
            SessionError::AgentAuthInvalid,
        ),
        (
            "agent with garbage",
            Some(Credential::new("x.y.z")),
            join(Role::Agent, None),
            SessionError::AgentAuthInvalid,
        ),
        (
            "credential for another session",
            Some(agent_token("ann", Some(other_session), None)),
            join(Role::Agent, None),
            SessionError::AgentAuthInvalid,
        ),
        (
            "agent-only credential as controller",
            Some(agent_token("ann", None, Some(vec![2]))),
            join(Role::Controller, None),
            SessionError::AgentAuthInvalid,
        ),
        (
            "customer without key",
            None,
            join(Role::Customer, None),
            SessionError::CustomerKeyInvalid,
        ),
        (
            "customer with a wrong key",
            None,
            join(Role::Customer, Some("00000000000000000000000000000000")),
            SessionError::CustomerKeyInvalid,
        ),
        (
            "customer with a short key",
            None,
            join(Role::Customer, Some("0")),
            SessionError::CustomerKeyInvalid,
        ),
    ];
    for (case, credential, request, want) in cases {
        let caller = s.caller(ip(7), credential.as_ref());
        assert_eq!(s.join(&caller, &t, request), Err(want), "{case}");
    }
    let name = Some("x".repeat(MAX_NAME_CHARS + 1));
    assert_eq!(
        s.join(
            &anonymous(&s),
            &t,
            JoinRequest {
                name,
                ..join(Role::Customer, Some(&key))
            }
        ),
        Err(SessionError::NameTooLong)
    );
    let bound = s.caller(ip(8), Some(&agent_token("bob", Some(&t), Some(vec![2]))));
    assert!(
        s.join(&bound, &t, join(Role::Agent, None)).is_ok(),
        "a credential for this session and role"
    );
    assert!(s
        .join(&anonymous(&s), &t, join(Role::Customer, Some(&key)))
        .is_ok());
    assert_eq!(
        s.join(&anonymous(&s), &t, join(Role::Customer, Some(&key))),
        Err(SessionError::CustomerAlreadyJoined),
        "one customer per session"
    );
}

#[test]
fn a_node_without_a_key_refuses_agents_and_none_lets_them_in() {
    let unconfigured = Sessions::new(limits(), &AccessConfig::default());
    let t = unconfigured
        .create(&anonymous(&unconfigured), true)
        .unwrap()
        .token;
    let caller = unconfigured.caller(ip(1), Some(&agent_token("ann", None, None)));
    assert_eq!(
        unconfigured.join(&caller, &t, join(Role::Agent, None)),
        Err(SessionError::AgentAuthUnconfigured)
    );
    let open = Sessions::new(
        limits(),
        &AccessConfig {
            agent_auth: AgentAuth::Disabled,
            ..AccessConfig::default()
        },
    );
    let t = open.create(&anonymous(&open), true).unwrap().token;
    assert!(open
        .join(&anonymous(&open), &t, join(Role::Controller, None))
        .is_ok());
}

#[tokio::test(start_paused = true)]
async fn misses_spend_the_probe_budget_per_address_or_agent() {
    let s = Sessions::new(
        limits(),
        &access_with("3/30s".parse().unwrap(), Budget::OFF),
    );
    let live = s.create(&anonymous(&s), true).unwrap().token;
    let guesser = s.caller(ip(66), None);
    for guess in ["000000001", "000000002", "000000003"] {
        assert_eq!(s.get(&guesser, guess), Err(SessionError::SessionNotFound));
    }
    // Spent: even the live token is refused, so a hit looks like a miss.
    assert!(matches!(
        s.get(&guesser, &live),
        Err(SessionError::TooManyAttempts(_))
    ));
    assert!(matches!(
        s.stop(&guesser, &token::user_token(&live, 1)),
        Err(SessionError::TooManyAttempts(_))
    ));
    assert_eq!(
        s.get(&s.caller(ip(67), None), &live),
        Ok(()),
        "another address"
    );
    // Agents behind the guesser's address are budgeted by their `sub`.
    let ann = s.caller(ip(66), Some(&agent_token("ann", None, None)));
    assert_eq!(s.get(&ann, &live), Ok(()));
    for _ in 0..3 {
        let _ = s.join(&ann, "000000009", join(Role::Agent, None));
    }
    assert!(matches!(
        s.get(&ann, &live),
        Err(SessionError::TooManyAttempts(_))
    ));
    let bob = s.caller(ip(66), Some(&agent_token("bob", None, None)));
    assert_eq!(
        s.get(&bob, &live),
        Ok(()),
        "one agent's typos do not lock out another"
    );
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(s.get(&guesser, &live), Ok(()), "the budget recovers");
}

#[test]
fn creates_are_budgeted_per_address() {
    let s = Sessions::new(
        SessionLimits::default(),
        &access_with(Budget::OFF, "2/1m".parse().unwrap()),
    );
    let greedy = s.caller(ip(9), None);
    assert!(s.create(&greedy, true).is_ok());
    assert!(s.create(&greedy, true).is_ok());
    assert!(matches!(
        s.create(&greedy, true),
        Err(SessionError::TooManyCreates(_))
    ));
    assert!(s.create(&s.caller(ip(10), None), true).is_ok());
}

#[test]
fn limits_are_enforced() {
    let s = sessions();
    let created = s.create(&anonymous(&s), true).unwrap();
    let t = created.token;
    s.create(&anonymous(&s), true).unwrap();
    s.create(&anonymous(&s), true).unwrap();
    assert_eq!(
        s.create(&anonymous(&s), true),
        Err(SessionError::CapacityExhausted)
    );
    assert_eq!(s.create(&anonymous(&s), false), Err(SessionError::Draining));
    s.join(
        &anonymous(&s),
        &t,
        join(Role::Customer, Some(&created.customer_key)),
    )
    .unwrap();
    s.join(&agent(&s), &t, join(Role::Agent, None)).unwrap();
    s.join(&agent(&s), &t, join(Role::Agent, None)).unwrap();
    assert_eq!(
        s.join(&agent(&s), &t, join(Role::Agent, None)).unwrap_err(),
        SessionError::SessionFull { max_users: 3 }
    );
}

#[test]
fn forged_user_tokens_are_unknown() {
    let s = sessions();
    let t = s.create(&anonymous(&s), true).unwrap().token;
    let real = s
        .join(&agent(&s), &t, join(Role::Controller, None))
        .unwrap()
        .user_token;
    let forged = token::user_token(&t, 42);
    assert_ne!(real, forged);
    assert_eq!(s.stop(&agent(&s), &forged), Err(SessionError::UserNotFound));
    assert_eq!(
        s.stop(&agent(&s), "garbage"),
        Err(SessionError::UserNotFound)
    );
}

#[test]
fn events_tell_joined_activated_deactivated() {
    let s = Sessions::new(
        SessionLimits {
            max_users_per_session: 2,
            ..limits()
        },
        &access_config(),
    );
    let mut events = s.subscribe_events();
    let created = s.create(&anonymous(&s), true).unwrap();
    let t = created.token.clone();
    s.join(
        &anonymous(&s),
        &t,
        join(Role::Customer, Some(&created.customer_key)),
    )
    .unwrap();
    let controller = s
        .join(&agent(&s), &t, join(Role::Controller, None))
        .unwrap();
    s.join(&agent(&s), &t, join(Role::Agent, None)).unwrap_err(); // full: no event
    let stopped = s.exit(&agent(&s), &controller.user_token).unwrap();
    let got: Vec<SessionEvent> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    assert!(matches!(&got[0], SessionEvent::Joined { user, .. } if user.role == Role::Customer));
    assert!(
        matches!(&got[1], SessionEvent::Joined { user, .. } if user.role == Role::Controller && user.agent_id.as_deref() == Some("ann"))
    );
    assert!(matches!(&got[2], SessionEvent::Activated { .. }));
    assert_eq!(
        got[3],
        SessionEvent::Deactivated {
            session: t.clone(),
            times: stopped
        }
    );
    assert_eq!(got.len(), 4);
    assert_eq!(
        s.user(&controller.user_token).unwrap(),
        (t, 2, Role::Controller)
    );
}

#[tokio::test(start_paused = true)]
async fn idle_sessions_expire_then_are_forgotten() {
    let s = sessions();
    let t = s.create(&anonymous(&s), true).unwrap().token;
    let mut live = s.watch_live();
    tokio::time::advance(Duration::from_secs(59)).await;
    s.touch(&t).unwrap();
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(s.sweep(), 1);
    assert_eq!(s.live_count(), 1);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(s.sweep(), 1, "ended but retained");
    assert_eq!(s.live_count(), 0);
    assert_eq!(*live.borrow_and_update(), 0);
    assert_eq!(s.touch(&t), Err(SessionError::Ended));
    tokio::time::advance(Duration::from_secs(600)).await;
    assert_eq!(s.touch(&t), Err(SessionError::SessionNotFound));
    assert_eq!(s.sweep(), 0);
}
