//! The QUIC connections' cipher suite order, and certificates verified once, come from the
//! patched libp2p-tls (`patches/`).
//!
//! A rustls server takes the first suite in the dialer's list that it supports, so this order
//! decides what seals and opens every packet. A handshake parses the peer's certificate three
//! times and a peer keeps its certificate while it runs, so its signatures are checked once. If
//! a libp2p upgrade leaves the patch behind (say libp2p-quic moves to a libp2p-tls the patch
//! does not match), these tests fail.

use libp2p::identity::Keypair;
use rustls::CipherSuite;

/// The patch's own CPU check, written again on purpose: the test must not take the answer from
/// the code it checks (and the patched crate keeps it private).
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
    // Without AES instructions a listener goes by its own order, ChaCha20-Poly1305 first.
    assert_eq!(server.ignore_client_order, !aes_in_hardware());
    // Whatever the order, every TLS 1.3 suite stays on offer, so any two libp2p peers agree.
    let mut accepted = suites(server.crypto_provider());
    accepted.sort_by_key(|s| u16::from(*s));
    let mut all = expected.to_vec();
    all.sort_by_key(|s| u16::from(*s));
    assert_eq!(accepted, all, "listener's suites");
}

/// The libp2p-tls that libp2p-quic links is the patched one: one copy in the lock file, built
/// from the workspace (no registry source). Holds on every CPU, unlike the order above.
#[test]
fn the_only_libp2p_tls_is_the_patched_one() {
    let lock = include_str!("../../../Cargo.lock");
    let packages: Vec<&str> = lock
        .split("[[package]]")
        .filter(|p| p.contains("\nname = \"libp2p-tls\"\n"))
        .collect();
    assert_eq!(packages.len(), 1, "one libp2p-tls in Cargo.lock");
    assert!(
        !packages[0].contains("source ="),
        "libp2p-tls comes from a registry, not from patches/: {}",
        packages[0]
    );
    let quic = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"libp2p-quic\"\n"))
        .expect("libp2p-quic in Cargo.lock");
    assert!(
        quic.contains("\"libp2p-tls\""),
        "libp2p-quic uses libp2p-tls"
    );
}

/// A certificate whose signatures were verified is remembered, and vouches for exactly its own
/// bytes: a copy with one byte of its self-signature changed is verified, refused, and not
/// remembered.
#[test]
fn verified_certificates_are_remembered_byte_for_byte() {
    let keypair = Keypair::generate_ed25519();
    let (certificate, _key) = libp2p_tls::certificate::generate(&keypair).unwrap();
    assert!(!libp2p_tls::certificate::remembers(&certificate));

    let parsed = libp2p_tls::certificate::parse(&certificate).expect("a fresh certificate");
    assert_eq!(parsed.peer_id(), keypair.public().to_peer_id());
    assert!(libp2p_tls::certificate::remembers(&certificate));
    let again = libp2p_tls::certificate::parse(&certificate).expect("remembered, still valid");
    assert_eq!(again.peer_id(), keypair.public().to_peer_id());
    // Remembering a certificate vouches for nothing in a handshake: whoever presents it must
    // still sign the handshake with its key, and a signature that is not one is refused.
    assert!(
        again
            .verify_signature(
                rustls::SignatureScheme::ECDSA_NISTP256_SHA256,
                b"a handshake transcript",
                &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
            )
            .is_err(),
        "a replayed certificate gives no handshake signature"
    );

    // The last bytes of the DER are the self-signature's.
    let mut forged = certificate.to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    let forged = rustls::pki_types::CertificateDer::from(forged);
    let refused = libp2p_tls::certificate::parse(&forged)
        .expect_err("a changed signature is verified, not taken from the remembered original");
    // libp2p-tls reports a bad self-signature as a signature algorithm mismatch.
    assert!(
        format!("{refused:?}").contains("SignatureAlgorithmMismatch"),
        "refused for its signature, not as unparsable: {refused:?}"
    );
    assert!(!libp2p_tls::certificate::remembers(&forged));
}
