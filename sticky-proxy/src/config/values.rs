//! The value syntaxes settings share: each is one `fn(&str) -> Result<T,
//! String>` that the flag parses with (`value_parser`), and a `de_*` twin
//! that reads the same syntax from the TOML file (`deserialize_with`), so a
//! flag and its key accept the same text.

use std::time::Duration;

use access::{Budget, TrustedProxies};
use serde::{Deserialize, Deserializer};

/// `20/10m`, `60/1m`, `off`.
pub fn parse_budget(text: &str) -> Result<Budget, String> {
    text.parse()
}

/// Parses `65536`, `64k`, `64KiB`, `1m`, `1MiB` (binary units).
pub fn parse_byte_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: usize = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 65536 or 64KiB)"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return Err(format!("`{text}` has an unknown unit (use KiB or MiB)")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// A context path, normalised: leading `/`, no trailing `/`, empty for the
/// root. Normalised as it is read, so a flag, a key and the default all end
/// up in the same form.
pub(super) fn parse_context_path(text: &str) -> Result<String, String> {
    Ok(shared_types::names::normalize_context_path(text))
}

/// A string value read with `parse`.
fn de_parsed<'de, D, T>(d: D, parse: fn(&str) -> Result<T, String>) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
{
    let text = String::deserialize(d)?;
    parse(&text).map(Some).map_err(serde::de::Error::custom)
}

pub(super) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_parsed(d, |text| {
        humantime::parse_duration(text).map_err(|e| e.to_string())
    })
}

pub(super) fn de_budget<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Budget>, D::Error> {
    de_parsed(d, parse_budget)
}

pub(super) fn de_context_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de_parsed(d, parse_context_path)
}

/// `trusted-proxies = "10.0.0.0/8, ::1"` or `["10.0.0.0/8", "::1"]`.
pub(super) fn de_trusted_proxies<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<TrustedProxies>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    let list = match Raw::deserialize(d)? {
        Raw::One(text) => text,
        Raw::Many(items) => items.join(","),
    };
    TrustedProxies::parse(&list)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `max-head-size = 65536` or `"64KiB"`.
pub(super) fn de_byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Number(n) => usize::try_from(n)
            .map(Some)
            .map_err(serde::de::Error::custom),
        Raw::Text(text) => parse_byte_size(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}
