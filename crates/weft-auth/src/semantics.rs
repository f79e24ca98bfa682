//! weft's resource semantics for UCAN attenuation checks.

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

    fn parse_resource(&self, resource: &str) -> Self::Resource {
        Resource::parse(resource).map_err(|_| resource.to_owned())
    }

    fn resource_contains(&self, granted: &Self::Resource, requested: &Self::Resource) -> bool {
        match (granted, requested) {
            (Ok(g), Ok(r)) => g.contains(r),
            (Err(g), Err(r)) => g == r,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weft_resources_narrow_by_pattern() {
        let s = WeftSemantics;
        let contains =
            |g: &str, r: &str| s.resource_contains(&s.parse_resource(g), &s.parse_resource(r));
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
