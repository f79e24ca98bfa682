//! weft's resource semantics for UCAN attenuation checks.

use weft_ucan::Semantics;

use crate::Resource;

/// `weft://` resources attenuate by realm and pattern containment (`orders.**` → `orders.*` →
/// `orders.get`); other resources are opaque and must match exactly; a weft resource never
/// contains a foreign one or the reverse.
#[derive(Debug, Clone, Copy, Default)]
pub struct WeftSemantics;

impl Semantics for WeftSemantics {
    fn resource_contains(&self, granted: &str, requested: &str) -> bool {
        match (Resource::parse(granted), Resource::parse(requested)) {
            (Ok(g), Ok(r)) => g.contains(&r),
            (Err(_), Err(_)) => granted == requested,
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
        assert!(s.resource_contains("weft://io.acme/orders.**", "weft://io.acme/orders.*"));
        assert!(!s.resource_contains("weft://io.acme/orders.*", "weft://io.acme/orders.**"));
        assert!(s.resource_contains("mailto:a@b.c", "mailto:a@b.c"));
        assert!(!s.resource_contains("mailto:a@b.c", "weft://io.acme"));
        assert!(!s.resource_contains("weft://io.acme", "mailto:a@b.c"));
    }
}
