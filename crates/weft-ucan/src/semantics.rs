//! What a granted resource and ability cover: the part of validation a capability model defines.

use crate::ability_covers;

/// The rules the [`Validator`](crate::Validator) consults when it checks that a delegation only
/// narrows what its proofs grant.
///
/// UCAN 0.10 leaves resource semantics to the application; weft's capability layer implements
/// this trait with pattern containment for `weft://` resources.
pub trait Semantics {
    /// A resource as the rules read it, parsed once per delegation step rather than once per
    /// pair of capabilities compared.
    type Resource;

    /// What bounds the work of comparing resources while one chain is verified; a fresh one per
    /// chain.
    type Budget: Default;

    /// Reads a resource URI.
    fn parse_resource(&self, resource: &str) -> Self::Resource;

    /// Does the granted resource include everything the requested one names? Spends from
    /// `budget`; once it is spent the answer may be a refusal.
    fn resource_contains(
        &self,
        granted: &Self::Resource,
        requested: &Self::Resource,
        budget: &mut Self::Budget,
    ) -> bool;

    /// Does the granted ability cover the requested one? Defaults to UCAN's ability hierarchy.
    fn ability_covers(&self, granted: &str, requested: &str) -> bool {
        ability_covers(granted, requested)
    }
}

/// Resources are opaque URIs: a delegation must name exactly the resource of its proof.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultSemantics;

impl Semantics for DefaultSemantics {
    type Resource = String;
    type Budget = ();

    fn parse_resource(&self, resource: &str) -> String {
        resource.to_owned()
    }

    fn resource_contains(&self, granted: &String, requested: &String, _budget: &mut ()) -> bool {
        granted == requested
    }
}
