//! The realm's decisions, without I/O: no actix, tokio or libp2p here, and no clock (every
//! input that depends on time takes `now`). Each type says in its doc in what order to drive it;
//! the actors around it turn messages into its inputs and its outputs into sends.

pub(crate) mod absent;
pub(crate) mod authority;
pub(crate) mod backoff;
pub(crate) mod bare;
pub(crate) mod budget;
pub(crate) mod calls;
pub(crate) mod caps;
pub(crate) mod chains;
pub(crate) mod delegation;
pub(crate) mod departure;
pub(crate) mod discovery;
pub(crate) mod forward;
pub(crate) mod handshake;
pub(crate) mod inbound;
pub(crate) mod interest;
pub(crate) mod keys;
pub(crate) mod lookups;
pub(crate) mod memo;
pub(crate) mod parked;
pub(crate) mod providers;
pub(crate) mod pubsub;
pub(crate) mod redial;
pub(crate) mod refusals;
pub(crate) mod relay;
pub(crate) mod rendezvous;
pub(crate) mod repair;
pub(crate) mod resolve;
pub(crate) mod roster;
pub(crate) mod seat;
pub(crate) mod sequence;
pub(crate) mod silent;
#[cfg(test)]
mod sim;
pub(crate) mod slots;
pub(crate) mod standing;
pub(crate) mod wildcards;

#[cfg(test)]
mod tests {
    /// Every file of the core, as compiled.
    const SOURCES: &[(&str, &str)] = &[
        ("absent.rs", include_str!("absent.rs")),
        ("authority.rs", include_str!("authority.rs")),
        ("backoff.rs", include_str!("backoff.rs")),
        ("bare.rs", include_str!("bare.rs")),
        ("budget.rs", include_str!("budget.rs")),
        ("calls.rs", include_str!("calls.rs")),
        ("caps.rs", include_str!("caps.rs")),
        ("chains.rs", include_str!("chains.rs")),
        ("delegation.rs", include_str!("delegation.rs")),
        ("departure.rs", include_str!("departure.rs")),
        ("discovery.rs", include_str!("discovery.rs")),
        ("forward.rs", include_str!("forward.rs")),
        ("handshake.rs", include_str!("handshake.rs")),
        ("inbound.rs", include_str!("inbound.rs")),
        ("interest.rs", include_str!("interest.rs")),
        ("keys.rs", include_str!("keys.rs")),
        ("lookups.rs", include_str!("lookups.rs")),
        ("memo.rs", include_str!("memo.rs")),
        ("parked.rs", include_str!("parked.rs")),
        ("providers.rs", include_str!("providers.rs")),
        ("pubsub.rs", include_str!("pubsub.rs")),
        ("redial.rs", include_str!("redial.rs")),
        ("refusals.rs", include_str!("refusals.rs")),
        ("relay.rs", include_str!("relay.rs")),
        ("repair.rs", include_str!("repair.rs")),
        ("rendezvous.rs", include_str!("rendezvous.rs")),
        ("resolve.rs", include_str!("resolve.rs")),
        ("roster.rs", include_str!("roster.rs")),
        ("seat.rs", include_str!("seat.rs")),
        ("sequence.rs", include_str!("sequence.rs")),
        ("silent.rs", include_str!("silent.rs")),
        ("sim.rs", include_str!("sim.rs")),
        ("slots.rs", include_str!("slots.rs")),
        ("standing.rs", include_str!("standing.rs")),
        ("wildcards.rs", include_str!("wildcards.rs")),
    ];

    /// A new file of the core is checked too: every module declared here is in [`SOURCES`].
    #[test]
    fn every_core_file_is_checked() {
        let declared: Vec<String> = include_str!("mod.rs")
            .lines()
            .filter_map(|line| {
                line.trim()
                    .strip_prefix("pub(crate) mod ")
                    .or_else(|| line.trim().strip_prefix("mod "))
            })
            .filter_map(|rest| rest.strip_suffix(';'))
            .map(|name| format!("{name}.rs"))
            .collect();
        assert!(declared.len() > 10, "{declared:?}");
        for file in &declared {
            assert!(
                SOURCES.iter().any(|(name, _)| name == file),
                "core/{file} is not in SOURCES"
            );
        }
    }

    /// The core stays free of I/O: it names no actor, runtime or network crate, no module of
    /// the runtime outside it but the error and event types, and no clock.
    #[test]
    fn the_core_does_no_io() {
        let forbidden = [
            "actix",
            "tokio",
            "libp2p",
            "weft_net",
            "SystemTime::now",
            "Instant::now",
            "crate::unix_now",
            "crate::peer",
            "crate::router",
            "crate::registry",
            "crate::membership",
            "crate::supervisor",
            "crate::sender",
            "crate::local",
            "crate::lane",
        ];
        for (file, source) in SOURCES {
            // Tests may read the clock to get a starting instant; the code above them may not.
            let code = source
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or(source);
            for word in forbidden {
                // The simulator is test code: it reads the clock once, for its epoch.
                if *file == "sim.rs" && word == "Instant::now" {
                    continue;
                }
                assert!(!code.contains(word), "core/{file} uses {word}");
            }
        }
    }
}
