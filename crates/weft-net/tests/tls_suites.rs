//! The QUIC connections' cipher suite order comes from the patched libp2p-tls (`patches/`).
//!
//! A rustls server takes the first suite in the dialer's list that it supports, so this order
//! decides what seals and opens every packet. If a libp2p upgrade silently drops the patch,
//! this test fails on any machine with AES instructions.

use libp2p::identity::Keypair;
use rustls::CipherSuite;

fn aes_in_hardware() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

fn suites(provider: &rustls::crypto::CryptoProvider) -> Vec<CipherSuite> {
    provider.cipher_suites.iter().map(|s| s.suite()).collect()
}

#[test]
fn tls_prefers_aes_gcm_with_aes_instructions() {
    let keypair = Keypair::generate_ed25519();
    let client = libp2p_tls::make_client_config(&keypair, None).unwrap();
    let server = libp2p_tls::make_server_config(&keypair).unwrap();
    let offered = suites(client.crypto_provider());

    let expected = if aes_in_hardware() {
        [
            CipherSuite::TLS13_AES_128_GCM_SHA256,
            CipherSuite::TLS13_AES_256_GCM_SHA384,
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        ]
    } else {
        [
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
            CipherSuite::TLS13_AES_256_GCM_SHA384,
            CipherSuite::TLS13_AES_128_GCM_SHA256,
        ]
    };
    assert_eq!(offered, expected, "dialer's order");
    // Whatever the order, every TLS 1.3 suite stays on offer, so any two libp2p peers agree.
    let mut accepted = suites(server.crypto_provider());
    accepted.sort_by_key(|s| u16::from(*s));
    let mut all = expected.to_vec();
    all.sort_by_key(|s| u16::from(*s));
    assert_eq!(accepted, all, "listener's suites");
}
