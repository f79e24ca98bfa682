//! Per-peer caps: how much of one kind a peer can make this node hold for it. Past a cap the
//! action is refused and counted; the peer is told once per session (a `Denied` with code
//! `limit`), since telling it every time would let a peer that does not read fill this node's
//! control queue with denials.

/// What a cap says about one more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Under the cap.
    Allow,
    /// At the cap: refuse; `tell` the peer if it has not been told yet.
    Refuse {
        /// First refusal of this kind in the session.
        tell: bool,
    },
}

/// One kind of thing a peer holds here, against its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cap {
    limit: usize,
    told: bool,
}

impl Cap {
    /// At most `limit` (at least one).
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            told: false,
        }
    }

    /// The peer holds `held` and asks for one more.
    pub(crate) fn admit(&mut self, held: usize) -> Verdict {
        if held < self.limit {
            Verdict::Allow
        } else {
            Verdict::Refuse {
                tell: !std::mem::replace(&mut self.told, true),
            }
        }
    }

    /// The cap.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }
}

/// Counts a refusal past the cap on `what` (`subscriptions`, `procedures`, `calls`).
pub(crate) fn count_refusal(what: &'static str) {
    metrics::counter!("weft_limit_refusals_total", "limit" => what).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_at_the_cap_and_tells_once() {
        let mut cap = Cap::new(2);
        assert_eq!(cap.admit(0), Verdict::Allow);
        assert_eq!(cap.admit(1), Verdict::Allow);
        assert_eq!(cap.admit(2), Verdict::Refuse { tell: true });
        assert_eq!(cap.admit(2), Verdict::Refuse { tell: false });
        assert_eq!(cap.admit(1), Verdict::Allow, "under again after a release");
        assert_eq!(cap.admit(2), Verdict::Refuse { tell: false });
        assert_eq!(Cap::new(0).limit(), 1);
    }
}
