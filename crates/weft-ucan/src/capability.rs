//! Capabilities and the generic UCAN 0.10 attenuation rules for abilities and caveats.
//!
//! In a payload, `cap` maps resource → ability → caveats, where caveats is a non-empty array of
//! objects read as an OR: the capability holds under any one of them. `[{}]` is unrestricted.

use serde_json::{Map, Value};

/// One caveat object. Empty means "no restriction".
pub type Caveat = Map<String, Value>;

/// One capability: an ability on a resource, under caveats.
#[derive(Debug, Clone, PartialEq)]
pub struct Capability {
    /// The resource URI, e.g. `weft://io.acme/orders.*`.
    pub resource: String,
    /// The ability, lower case, e.g. `rpc/call`.
    pub ability: String,
    /// Non-empty; any one caveat suffices (OR).
    pub caveats: Vec<Caveat>,
}

impl Capability {
    /// True when one of the caveats is `{}`: the capability is unrestricted.
    pub fn is_unrestricted(&self) -> bool {
        self.caveats.iter().any(Map::is_empty)
    }
}

/// Does a granted ability cover a requested one?
///
/// Abilities are compared case-insensitively (UCAN 0.10 §3.2). `*` covers every ability; a
/// namespace wildcard `ns/*` covers every ability below `ns/`.
pub fn ability_covers(granted: &str, requested: &str) -> bool {
    if granted == "*" || granted.eq_ignore_ascii_case(requested) {
        return true;
    }
    match granted.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('/') => {
            requested.len() > prefix.len()
                && requested.is_char_boundary(prefix.len())
                && requested[..prefix.len()].eq_ignore_ascii_case(prefix)
        }
        _ => false,
    }
}

/// Do the granted caveats (a proof's) allow the requested caveats (the delegation's)?
///
/// Every requested caveat must be at least as strict as some granted caveat: it carries every
/// field of that caveat, each with a value that narrows the granted one (an array's items are a
/// subset, an object's fields narrow recursively, anything else is equal). Adding fields restricts
/// further and is allowed; dropping or widening one escalates and is not.
pub fn caveats_enable(granted: &[Caveat], requested: &[Caveat]) -> bool {
    requested
        .iter()
        .all(|r| granted.iter().any(|g| caveat_enables(g, r)))
}

fn caveat_enables(granted: &Caveat, requested: &Caveat) -> bool {
    granted
        .iter()
        .all(|(key, g)| requested.get(key).is_some_and(|r| narrows(g, r)))
}

fn narrows(granted: &Value, requested: &Value) -> bool {
    match (granted, requested) {
        (Value::Array(g), Value::Array(r)) => r.iter().all(|item| g.contains(item)),
        (Value::Object(g), Value::Object(r)) => caveat_enables(g, r),
        _ => granted == requested,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caveats(v: Value) -> Vec<Caveat> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_object().unwrap().clone())
            .collect()
    }

    #[test]
    fn ability_hierarchy() {
        assert!(ability_covers("*", "rpc/call"));
        assert!(ability_covers("rpc/*", "rpc/call"));
        assert!(ability_covers("RPC/Call", "rpc/call"));
        assert!(ability_covers("rpc/call", "rpc/call"));
        assert!(!ability_covers("rpc/*", "msg/publish"));
        assert!(!ability_covers("rpc/*", "rpc/"));
        assert!(!ability_covers("rpc/call", "rpc/*"));
        assert!(!ability_covers("rpc/call", "*"));
        assert!(!ability_covers("r*", "rpc/call"));
    }

    #[test]
    fn caveats_attenuate_never_escalate() {
        let open = caveats(json!([{}]));
        let news = caveats(json!([{"templates": ["newsletter"]}]));
        let both = caveats(json!([{"templates": ["newsletter", "marketing"]}]));
        let market = caveats(json!([{"templates": ["marketing"]}]));
        assert!(caveats_enable(&open, &news));
        assert!(caveats_enable(&news, &news));
        assert!(caveats_enable(&both, &news));
        assert!(!caveats_enable(&news, &both));
        assert!(!caveats_enable(&news, &market));
        assert!(!caveats_enable(&news, &open), "dropping a caveat widens");
        let stricter = caveats(json!([{"templates": ["newsletter"], "max": 3}]));
        assert!(caveats_enable(&news, &stricter), "adding a field narrows");
        let either = caveats(json!([{"templates": ["newsletter"]}, {"templates": ["marketing"]}]));
        assert!(caveats_enable(&either, &market));
        assert!(!caveats_enable(&market, &either));
    }
}
