//! The order check of one session's stream: customers number their messages
//! 0, 1, 2, …; the agent records what arrives.

/// Sequence numbers above this are not ours (a garbled message): counted as
/// unexpected rather than growing the seen-set without bound.
pub const MAX_SEQ: u64 = 1 << 24;

/// What one receiver saw of a numbered stream.
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    seen: Vec<bool>,
    distinct: u64,
    highest: Option<u64>,
    reordered: u64,
    duplicates: u64,
    unexpected: u64,
}

/// How one arrival fits the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Higher than everything before it (gaps are counted as lost at the end).
    InOrder,
    /// Lower than one already received: it was overtaken.
    Reordered,
    /// Received before.
    Duplicate,
    /// Out of range.
    Unexpected,
}

impl SeqTracker {
    pub fn record(&mut self, seq: u64) -> Arrival {
        if seq >= MAX_SEQ {
            self.unexpected += 1;
            return Arrival::Unexpected;
        }
        let index = seq as usize;
        if index >= self.seen.len() {
            self.seen.resize((index + 1).next_power_of_two(), false);
        }
        if self.seen[index] {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        self.seen[index] = true;
        self.distinct += 1;
        match self.highest {
            Some(highest) if seq < highest => {
                self.reordered += 1;
                Arrival::Reordered
            }
            _ => {
                self.highest = Some(seq);
                Arrival::InOrder
            }
        }
    }

    /// Distinct sequence numbers received.
    pub fn distinct(&self) -> u64 {
        self.distinct
    }

    /// Of `0..sent`, how many never arrived.
    pub fn lost(&self, sent: u64) -> u64 {
        let end = (sent as usize).min(self.seen.len());
        let received = self.seen[..end].iter().filter(|s| **s).count() as u64;
        sent - received.min(sent)
    }

    pub fn reordered(&self) -> u64 {
        self.reordered
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    pub fn unexpected(&self) -> u64 {
        self.unexpected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_is_clean() {
        let mut t = SeqTracker::default();
        for i in 0..100 {
            assert_eq!(t.record(i), Arrival::InOrder);
        }
        assert_eq!((t.distinct(), t.lost(100), t.reordered()), (100, 0, 0));
    }

    #[test]
    fn gaps_overtakes_and_repeats_are_told_apart() {
        let mut t = SeqTracker::default();
        for i in [0, 2, 1, 2, 5] {
            t.record(i);
        }
        assert_eq!(t.record(MAX_SEQ), Arrival::Unexpected);
        assert_eq!(t.distinct(), 4);
        assert_eq!(t.reordered(), 1);
        assert_eq!(t.duplicates(), 1);
        assert_eq!(t.unexpected(), 1);
        // 3, 4 and 6 never came.
        assert_eq!(t.lost(7), 3);
        // Nothing received beyond what was sent counts as lost.
        assert_eq!(t.lost(2), 0);
        assert_eq!(SeqTracker::default().lost(5), 5);
    }
}
