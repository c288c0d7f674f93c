//! Where session tokens come from.
//!
//! A token is nine digits (the customer reads it aloud; the contract fixes
//! the shape). To make tokens unique in the whole cluster without a shared
//! store, each node draws from its own share of the 10⁹ values:
//! `--token-partition I/N` gives node I the tokens `t` with `t mod N = I-1`.
//! Two nodes with different partitions can never hand out the same token.
//! The cost is entropy: a node's tokens take log2(10⁹/N) bits instead of
//! log2(10⁹) ≈ 29.9 (N = 3: 28.3 bits; N = 100: 23.3 bits), which the probe
//! budget, not the token, has to make up for anyway.
//!
//! The draw is injectable so tests can force two nodes onto the same draw.

use std::str::FromStr;

use rand::Rng;

/// All nine-digit tokens.
const TOKEN_SPACE: u32 = 1_000_000_000;

/// This node's share of the token space: partition `index` (0-based) of
/// `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPartition {
    index: u32,
    count: u32,
}

impl TokenPartition {
    /// The whole token space: tokens unique on this node only.
    pub const WHOLE: TokenPartition = TokenPartition { index: 0, count: 1 };

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// How many draws this partition has.
    fn slots(&self) -> u32 {
        TOKEN_SPACE / self.count
    }

    /// The token of draw `slot` (`slot < slots()`).
    fn token(&self, slot: u32) -> String {
        format!("{:09}", slot % self.slots() * self.count + self.index)
    }
}

impl FromStr for TokenPartition {
    type Err = String;

    /// `I/N`, 1 ≤ I ≤ N ≤ 1000.
    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = || format!("{raw:?} is not a token partition: write I/N, 1 <= I <= N <= 1000");
        let (i, n) = raw.trim().split_once('/').ok_or_else(bad)?;
        let i: u32 = i.trim().parse().map_err(|_| bad())?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        if i == 0 || i > n || n > 1000 {
            return Err(bad());
        }
        Ok(TokenPartition {
            index: i - 1,
            count: n,
        })
    }
}

impl std::fmt::Display for TokenPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

type Draw = Box<dyn FnMut(u32) -> u32 + Send>;

/// Draws candidate tokens in this node's partition.
pub struct TokenSource {
    partition: TokenPartition,
    /// A number below its argument.
    draw: Draw,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// Nine random digits from the thread-local CSPRNG (ChaCha, seeded from
    /// the OS), in `partition`.
    pub fn random(partition: TokenPartition) -> Self {
        Self::with_draw(partition, |bound| rand::rng().random_range(0..bound))
    }

    /// Deterministic draws from `seed`: for end-to-end tests that must force
    /// two nodes onto the same draws (`--insecure-token-seed`). Predictable
    /// tokens; never in production.
    pub fn seeded(partition: TokenPartition, seed: u64) -> Self {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        Self::with_draw(partition, move |bound| rng.random_range(0..bound))
    }

    /// Tests: a chosen sequence of draws.
    pub fn with_draw(
        partition: TokenPartition,
        draw: impl FnMut(u32) -> u32 + Send + 'static,
    ) -> Self {
        Self {
            partition,
            draw: Box::new(draw),
        }
    }

    pub fn next_candidate(&mut self) -> String {
        let slot = (self.draw)(self.partition.slots());
        self.partition.token(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_parse() {
        let cases: &[(&str, Option<(u32, u32)>)] = &[
            ("1/1", Some((0, 1))),
            ("2/3", Some((1, 3))),
            (" 3 / 3 ", Some((2, 3))),
            ("0/3", None),
            ("4/3", None),
            ("1/0", None),
            ("1/1001", None),
            ("2", None),
        ];
        for (raw, want) in cases {
            let got = raw
                .parse::<TokenPartition>()
                .ok()
                .map(|p| (p.index, p.count));
            assert_eq!(got, *want, "{raw}");
        }
    }

    #[test]
    fn the_same_draw_gives_different_nodes_different_tokens() {
        let nodes: Vec<TokenPartition> = ["1/3", "2/3", "3/3"]
            .iter()
            .map(|p| p.parse().unwrap())
            .collect();
        for draw in [0, 1, 42, TOKEN_SPACE / 3 - 1] {
            let tokens: Vec<String> = nodes
                .iter()
                .map(|p| TokenSource::with_draw(*p, move |_| draw).next_candidate())
                .collect();
            assert_ne!(tokens[0], tokens[1], "draw {draw}");
            assert_ne!(tokens[1], tokens[2], "draw {draw}");
            assert_ne!(tokens[0], tokens[2], "draw {draw}");
            for (p, t) in nodes.iter().zip(&tokens) {
                assert_eq!(t.len(), 9);
                let n: u32 = t.parse().unwrap();
                assert_eq!(n % p.count, p.index, "{t} is in partition {p}");
            }
        }
        let mut whole = TokenSource::with_draw(TokenPartition::WHOLE, |bound| bound - 1);
        assert_eq!(whole.next_candidate(), "999999999");
    }
}
