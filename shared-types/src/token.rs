//! Token shapes.
//!
//! A **session token** is nine ASCII digits (leading zeros kept: it is a
//! string), read aloud by the customer to the agent.
//!
//! A **user token** is `<sessionToken>-<32 lower-case hex digits>`: 128 random
//! bits behind the session token of the session it belongs to. Carrying the
//! session token lets the proxy route a user-token request (Stop Session with
//! no cookie) with the same owner lookup it uses for session paths, with no
//! second kind of lookup. The session token is no secret from a participant
//! (everyone in the session was told it); the 128 random bits are the secret.

/// Number of digits of a session token.
pub const SESSION_TOKEN_LEN: usize = 9;

/// Number of hex digits of a user token's secret part (128 bits).
pub const USER_SECRET_HEX_LEN: usize = 32;

/// Whether `s` has the shape of a session token (nine ASCII digits).
pub fn is_session_token(s: &str) -> bool {
    s.len() == SESSION_TOKEN_LEN && s.bytes().all(|b| b.is_ascii_digit())
}

/// The session token a well-formed user token names, or `None` when `s` is not
/// shaped like a user token.
pub fn session_of_user_token(s: &str) -> Option<&str> {
    let (session, secret) = s.split_once('-')?;
    let well_formed = is_session_token(session)
        && secret.len() == USER_SECRET_HEX_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    well_formed.then_some(session)
}

/// Builds a user token from its session token and 128 random bits.
pub fn user_token(session_token: &str, secret: u128) -> String {
    format!("{session_token}-{secret:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tokens_are_nine_digits() {
        assert!(is_session_token("000000001"));
        assert!(!is_session_token("00000001"));
        assert!(!is_session_token("0000000012"));
        assert!(!is_session_token("00000000a"));
        assert!(!is_session_token("٠٠٠٠٠٠٠٠٠"));
    }

    #[test]
    fn user_tokens_carry_their_session() {
        let token = user_token("012345678", 0xdead_beef);
        assert_eq!(token.len(), 9 + 1 + 32);
        assert_eq!(session_of_user_token(&token), Some("012345678"));
        assert_eq!(session_of_user_token("012345678"), None);
        assert_eq!(session_of_user_token("012345678-XYZ"), None);
        let upper = token.to_uppercase();
        assert_eq!(session_of_user_token(&upper), None);
    }
}
