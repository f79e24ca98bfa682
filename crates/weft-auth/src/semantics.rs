//! weft's resource semantics for UCAN attenuation checks.

use weft_names::containment::{BUDGET, Budget};
use weft_ucan::Semantics;

use crate::Resource;

/// `weft://` resources attenuate by realm and pattern containment (`orders.**` → `orders.*` →
/// `orders.get`); other resources are opaque and must match exactly; a weft resource never
/// contains a foreign one or the reverse.
#[derive(Debug, Clone, Copy, Default)]
pub struct WeftSemantics;

impl Semantics for WeftSemantics {
    /// A `weft://` resource, or the URI of any other.
    type Resource = Result<Resource, String>;
    type Budget = ChainBudget;

    fn parse_resource(&self, resource: &str) -> Self::Resource {
        Resource::parse(resource).map_err(|_| resource.to_owned())
    }

    fn resource_contains(
        &self,
        granted: &Self::Resource,
        requested: &Self::Resource,
        budget: &mut ChainBudget,
    ) -> bool {
        match (granted, requested) {
            (Ok(g), Ok(r)) => g.contains_within(r, &mut budget.0),
            (Err(g), Err(r)) => g == r,
            _ => false,
        }
    }
}

/// The pattern work one chain's verification may spend: a few pathological comparisons' worth
/// (about 160 µs), however many tokens and capabilities the chain has. Past it, what remains to
/// compare is refused.
#[derive(Debug)]
pub struct ChainBudget(Budget);

impl Default for ChainBudget {
    fn default() -> Self {
        Self(Budget::new(4 * BUDGET))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weft_resources_narrow_by_pattern() {
        let s = WeftSemantics;
        let contains = |g: &str, r: &str| {
            let mut budget = ChainBudget::default();
            s.resource_contains(&s.parse_resource(g), &s.parse_resource(r), &mut budget)
        };
        assert!(contains(
            "weft://io.acme/orders.**",
            "weft://io.acme/orders.*"
        ));
        assert!(!contains(
            "weft://io.acme/orders.*",
            "weft://io.acme/orders.**"
        ));
        assert!(contains("mailto:a@b.c", "mailto:a@b.c"));
        assert!(!contains("mailto:a@b.c", "weft://io.acme"));
        assert!(!contains("weft://io.acme", "mailto:a@b.c"));
    }
}
