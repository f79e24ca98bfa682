//! Frames to bytes and back.

use bytes::{Buf, BytesMut};

use crate::{Frame, WireError};

/// The wire version this code speaks.
pub const WIRE_VERSION: u8 = 6;
/// Bytes before the body: the length prefix and the version byte.
pub const HEADER_LEN: usize = 5;
/// Default frame limit (length prefix value): 1 MiB of payload plus room for the envelope.
pub const DEFAULT_MAX_FRAME: usize = 1024 * 1024 + 4096;

/// Appends one encoded frame to `out`.
///
/// Fails only if the frame exceeds `max_frame`, in which case `out` is left as it was.
pub fn encode(frame: &Frame, max_frame: usize, out: &mut Vec<u8>) -> Result<(), WireError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(WIRE_VERSION);
    let encoded = postcard::to_extend(frame, std::mem::take(out));
    *out = encoded.map_err(|e| WireError::Malformed(format!("cannot encode: {e}")))?;
    let len = out.len() - start - 4;
    if len > max_frame {
        out.truncate(start);
        return Err(WireError::TooLarge {
            len,
            max: max_frame,
        });
    }
    // Invariant: len <= max_frame, which callers keep far below u32::MAX.
    let prefix = u32::try_from(len).map_err(|_| WireError::TooLarge {
        len,
        max: max_frame,
    })?;
    out[start..start + 4].copy_from_slice(&prefix.to_be_bytes());
    Ok(())
}

/// `Frame::Refused`'s index, the first byte of its body. It and [`crate::Refusal`]'s layout are
/// the same in every wire version, so that a node can tell a peer of another version why it
/// refuses it ([`encode_refusal`]), and the peer can read it.
pub const REFUSED_INDEX: u8 = 1;

/// The longest frame of another version that is read (a refusal): its index, a code and a
/// reason at their limits, and their lengths.
const MAX_REFUSAL_FRAME: usize = 1 + 1 + crate::frame::MAX_CODE + crate::frame::MAX_REASON + 2 * 3;

/// A `Frame::Refused` of `refusal`, encoded for a peer that speaks wire version `version`.
pub fn encode_refusal(refusal: &crate::Refusal, version: u8) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    encode(
        &Frame::Refused(refusal.clone()),
        DEFAULT_MAX_FRAME,
        &mut out,
    )?;
    if let Some(byte) = out.get_mut(HEADER_LEN - 1) {
        *byte = version;
    }
    Ok(out)
}

/// Decodes frames from a byte buffer that a reader keeps filling.
///
/// `decode` returns `Ok(None)` until a whole frame is buffered ("incomplete" is ordinary control
/// flow, as in mini-redis), then the frame, consuming its bytes. An error means the stream must be
/// closed: framing cannot be trusted after it.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_frame: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder {
    /// A decoder refusing frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame }
    }

    /// The frame limit.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Takes the next whole frame out of `buf`, if there is one.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        let Some(header) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > self.max_frame {
            return Err(WireError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        if len == 0 {
            return Err(WireError::Malformed("empty frame".into()));
        }
        let version = header[4];
        let unsupported = WireError::UnsupportedVersion {
            theirs: version,
            ours: WIRE_VERSION,
        };
        // Only a refusal is read across versions, and only once it is whole; anything else of
        // another version ends the stream at its header.
        if version != WIRE_VERSION {
            // A refusal is a few hundred bytes at most; anything else, or longer, of another
            // version is not read.
            if !(2..=MAX_REFUSAL_FRAME).contains(&len) {
                return Err(unsupported);
            }
            match buf.get(HEADER_LEN) {
                None => return Ok(None),
                Some(&REFUSED_INDEX) => {}
                Some(_) => return Err(unsupported),
            }
        }
        if buf.len() < 4 + len {
            buf.reserve(4 + len - buf.len());
            return Ok(None);
        }
        if version != WIRE_VERSION {
            let body = buf
                .get(HEADER_LEN + 1..4 + len)
                .ok_or(unsupported.clone())?;
            let (refusal, rest) = postcard::take_from_bytes::<crate::Refusal>(body)
                .map_err(|_| unsupported.clone())?;
            if !rest.is_empty() {
                return Err(unsupported);
            }
            let frame = Frame::Refused(refusal);
            frame.check_limits()?;
            buf.advance(4 + len);
            return Ok(Some(frame));
        }
        let body = &buf[HEADER_LEN..4 + len];
        let (frame, rest) = postcard::take_from_bytes::<Frame>(body)
            .map_err(|e| WireError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(WireError::Malformed(format!(
                "{} trailing bytes",
                rest.len()
            )));
        }
        frame.check_limits()?;
        buf.advance(4 + len);
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Hello, Interest, Join, Publish, RealmJoin, Refusal, Welcome, WireChain};
    use bytes::Bytes;
    use proptest::prelude::*;
    use weft_identity::Did;
    use weft_names::{Name, Pattern, RealmName};

    fn round_trip(frame: &Frame) -> Frame {
        let mut out = Vec::new();
        encode(frame, DEFAULT_MAX_FRAME, &mut out).unwrap();
        let mut buf = BytesMut::from(&out[..]);
        let decoded = Decoder::default().decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());
        decoded
    }

    fn publish(payload: Vec<u8>) -> Frame {
        Frame::Publish(Publish {
            realm: 0,
            topic: Name::new("orders.placed").unwrap(),
            seq: 7,
            payload: payload.into(),
            chain: None,
        })
    }

    #[test]
    fn every_frame_kind_round_trips() {
        let frames = [
            Frame::Hello(Hello {
                realms: vec![[7; 16], [8; 16]],
                client: true,
                run: 1_800_000_000_000_000_000,
            }),
            Frame::Forward(crate::Forward {
                realm: 2,
                hops: 9,
                batch: bytes::Bytes::from_static(b"signed bytes"),
                signature: bytes::Bytes::from_static(&[1; 64]),
            }),
            Frame::Join(Join {
                realms: vec![RealmJoin {
                    index: 1,
                    realm: RealmName::new("io.acme").unwrap(),
                    owner: Some(Did::from_public_key([9; 32])),
                    chains: vec![WireChain {
                        leaf: "a.b.c".into(),
                        proofs: vec!["d.e.f".into()],
                    }],
                }],
            }),
            Frame::Welcome(Welcome {
                agent: "weft/0.1.0".into(),
                tags: vec![("region".into(), "eu".into())],
            }),
            Frame::Refused(Refusal {
                code: "unauthorized".into(),
                reason: "no realm/join".into(),
            }),
            Frame::Interest(Interest::Subscribe {
                realm: 3,
                id: 1,
                pattern: Pattern::new("orders.**").unwrap(),
                chain: Some(WireChain {
                    leaf: "a.b.c".into(),
                    proofs: vec![],
                }),
            }),
            Frame::Interest(Interest::Unsubscribe { realm: 3, id: 1 }),
            publish(b"{\"id\":1}".to_vec()),
            Frame::Denied(crate::Denial {
                realm: 1,
                code: "unauthorized".into(),
                reason: "no realm/join".into(),
            }),
            Frame::Bye,
            Frame::Release,
            Frame::Have(crate::BatchIds {
                realm: 1,
                ids: vec![[3; 16], [4; 16]],
            }),
            Frame::Want(crate::BatchIds {
                realm: 1,
                ids: vec![[4; 16]],
            }),
            Frame::Restart,
            Frame::Delegate(crate::Delegation {
                realm: 2,
                chains: vec![WireChain {
                    leaf: "d.e.f".into(),
                    proofs: vec!["a.b.c".into()],
                }],
            }),
            Frame::Accepted,
            Frame::Revoke(crate::RevokeRecord {
                realm: 0,
                record: r#"{"iss":"did:key:z6Mk…","revoke":"bafk…","challenge":"…"}"#.into(),
            }),
            Frame::Interest(Interest::Advertise {
                realm: 0,
                procedure: Name::new("orders.get").unwrap(),
            }),
            Frame::Call(crate::Call {
                realm: 0,
                id: 9,
                procedure: Name::new("orders.get").unwrap(),
                timeout_ms: 5000,
                payload: Bytes::from_static(b"{}"),
                chain: Some(WireChain {
                    leaf: "a.b.c".into(),
                    proofs: vec![],
                }),
            }),
            Frame::Reply(crate::Reply {
                realm: 0,
                id: 9,
                outcome: crate::Outcome::Ok(Bytes::from_static(b"1")),
            }),
            Frame::Reply(crate::Reply {
                realm: 0,
                id: 10,
                outcome: crate::Outcome::Err {
                    code: "timeout".into(),
                    message: "too slow".into(),
                },
            }),
        ];
        for frame in &frames {
            assert_eq!(&round_trip(frame), frame);
        }
    }

    #[test]
    fn partial_input_waits_and_concatenated_frames_split() {
        let mut out = Vec::new();
        encode(&publish(vec![1; 100]), DEFAULT_MAX_FRAME, &mut out).unwrap();
        encode(&publish(vec![2; 3]), DEFAULT_MAX_FRAME, &mut out).unwrap();
        let decoder = Decoder::default();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        // Feed one byte at a time: every prefix is "incomplete", never an error.
        for byte in out {
            buf.extend_from_slice(&[byte]);
            while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames, vec![publish(vec![1; 100]), publish(vec![2; 3])]);
    }

    #[test]
    fn oversized_frames_are_refused_from_the_prefix() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, WIRE_VERSION][..]);
        assert!(matches!(
            Decoder::default().decode(&mut buf),
            Err(WireError::TooLarge { .. })
        ));
        let mut out = Vec::new();
        let err = encode(&publish(vec![0; 2000]), 1000, &mut out).unwrap_err();
        assert!(matches!(err, WireError::TooLarge { .. }));
        assert!(out.is_empty(), "a refused frame leaves nothing behind");
    }

    #[test]
    fn a_refusal_reads_across_versions_and_nothing_else_does() {
        let refusal = crate::Refusal {
            code: "incompatibleVersion".into(),
            reason: "wire version 9 here".into(),
        };
        // The index every version keeps.
        let mut ours = Vec::new();
        encode(
            &Frame::Refused(refusal.clone()),
            DEFAULT_MAX_FRAME,
            &mut ours,
        )
        .unwrap();
        assert_eq!(ours[HEADER_LEN], REFUSED_INDEX);
        for version in [3, WIRE_VERSION, 9] {
            let bytes = encode_refusal(&refusal, version).unwrap();
            assert_eq!(bytes[HEADER_LEN - 1], version);
            let decoder = Decoder::default();
            let mut buf = BytesMut::new();
            let mut got = None;
            // Byte by byte: a prefix is incomplete, never an error.
            for byte in bytes {
                buf.extend_from_slice(&[byte]);
                if let Some(frame) = decoder.decode(&mut buf).unwrap() {
                    got = Some(frame);
                }
            }
            assert_eq!(
                got,
                Some(Frame::Refused(refusal.clone())),
                "version {version}"
            );
            assert!(buf.is_empty());
        }
        // A hello of another version is not read.
        let mut hello = Vec::new();
        let frame = Frame::Hello(crate::Hello {
            realms: Vec::new(),
            client: false,
            run: 1,
        });
        encode(&frame, DEFAULT_MAX_FRAME, &mut hello).unwrap();
        hello[HEADER_LEN - 1] = 3;
        let mut buf = BytesMut::from(&hello[..]);
        assert_eq!(
            Decoder::default().decode(&mut buf),
            Err(WireError::UnsupportedVersion {
                theirs: 3,
                ours: WIRE_VERSION
            })
        );
        // A one-byte frame of another version, and one naming a refusal it does not hold, are
        // errors, not panics.
        for bytes in [
            &[0u8, 0, 0, 1, 3][..],
            &[0, 0, 0, 2, 3, REFUSED_INDEX],
            &[0, 0, 0, 3, 3, REFUSED_INDEX, 9],
        ] {
            let mut buf = BytesMut::from(bytes);
            assert!(Decoder::default().decode(&mut buf).is_err(), "{bytes:?}");
        }
        // A refusal of another version over the limits is refused, not trusted.
        let long = crate::Refusal {
            code: "x".repeat(10_000),
            reason: String::new(),
        };
        let mut buf = BytesMut::from(&encode_refusal(&long, 3).unwrap()[..]);
        assert!(Decoder::default().decode(&mut buf).is_err());
    }

    #[test]
    fn other_versions_are_named() {
        let mut buf = BytesMut::from(&[0, 0, 0, 5, 99, 0, 0, 0, 0][..]);
        assert_eq!(
            Decoder::default().decode(&mut buf),
            Err(WireError::UnsupportedVersion {
                theirs: 99,
                ours: WIRE_VERSION
            })
        );
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        let cases: [&[u8]; 5] = [
            &[0, 0, 0, 0, 1],                // empty
            &[0, 0, 0, 2, 1, 200],           // unknown frame variant
            &[0, 0, 0, 3, 1, 3, 0],          // truncated publish
            &[0, 0, 0, 1, 1],                // version only
            &[0, 0, 0, 6, 1, 2, 0, 0, 0, 0], // interest with trailing garbage
        ];
        for bytes in cases {
            let mut buf = BytesMut::from(bytes);
            assert!(Decoder::default().decode(&mut buf).is_err(), "{bytes:?}");
        }
        // An invalid topic inside an otherwise well-formed publish.
        let mut buf = buf_with_topic(b"a..b");
        // postcard does not keep serde's custom messages, so the name error is not in the text.
        let err = Decoder::default().decode(&mut buf).unwrap_err();
        assert!(matches!(err, WireError::Malformed(_)), "{err}");
        // The same bytes with a valid topic decode: it was the name that was refused.
        let mut good = buf_with_topic(b"a.bb");
        assert!(Decoder::default().decode(&mut good).unwrap().is_some());
    }

    fn buf_with_topic(topic: &[u8]) -> BytesMut {
        let mut body = vec![WIRE_VERSION, 3, 0, topic.len() as u8];
        body.extend_from_slice(topic);
        body.extend_from_slice(&[0, 0, 0]); // seq, empty payload, no chain
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
        buf.extend_from_slice(&body);
        buf
    }

    #[test]
    fn chain_limits_hold() {
        let Frame::Publish(mut publish) = publish(vec![]) else {
            unreachable!()
        };
        publish.chain = Some(WireChain {
            leaf: "a.b.c".into(),
            proofs: vec!["p".into(); crate::frame::MAX_PROOFS + 1],
        });
        let mut out = Vec::new();
        encode(&Frame::Publish(publish), DEFAULT_MAX_FRAME, &mut out).unwrap();
        let mut buf = BytesMut::from(&out[..]);
        assert!(matches!(
            Decoder::default().decode(&mut buf),
            Err(WireError::Limit(_))
        ));
    }

    #[test]
    fn greeting_limits_hold() {
        let welcome = |agent: &str, tags: usize| {
            Frame::Welcome(Welcome {
                agent: agent.into(),
                tags: vec![("k".into(), "v".into()); tags],
            })
        };
        let join = |chains: usize, proofs: usize| {
            Frame::Join(Join {
                realms: vec![RealmJoin {
                    index: 0,
                    realm: RealmName::new("dev").unwrap(),
                    owner: None,
                    chains: vec![
                        WireChain {
                            leaf: "a.b.c".into(),
                            proofs: vec!["p".into(); proofs],
                        };
                        chains
                    ],
                }],
            })
        };
        let too_many_realms = Frame::Hello(Hello {
            realms: vec![[0; 16]; crate::frame::MAX_REALMS + 1],
            client: false,
            run: 0,
        });
        let short_signature = Frame::Forward(crate::Forward {
            realm: 0,
            hops: 0,
            batch: bytes::Bytes::new(),
            signature: bytes::Bytes::from_static(&[1; 63]),
        });
        let too_many_ids = Frame::Have(crate::BatchIds {
            realm: 0,
            ids: vec![[0; 16]; crate::MAX_BATCH_IDS + 1],
        });
        let refused = [
            welcome("weft", crate::frame::MAX_TAGS + 1),
            welcome(&"a".repeat(crate::frame::MAX_AGENT + 1), 0),
            join(crate::frame::MAX_CHAINS + 1, 0),
            join(1, crate::frame::MAX_PROOFS + 1),
            too_many_realms,
            short_signature,
            too_many_ids,
        ];
        for frame in &refused {
            let mut out = Vec::new();
            encode(frame, DEFAULT_MAX_FRAME, &mut out).unwrap();
            let mut buf = BytesMut::from(&out[..]);
            assert!(
                matches!(
                    Decoder::default().decode(&mut buf),
                    Err(WireError::Limit(_))
                ),
                "{frame:?}"
            );
        }
        for frame in [welcome("weft/0.1.0", 3), join(2, 3)] {
            assert_eq!(round_trip(&frame), frame);
        }
    }

    proptest! {
        #[test]
        fn publish_round_trips(
            realm in any::<u16>(),
            seq in any::<u64>(),
            topic in prop::collection::vec("[a-zA-Z0-9_-]{1,8}", 1..6),
            payload in prop::collection::vec(any::<u8>(), 0..2048),
        ) {
            let frame = Frame::Publish(Publish {
                realm,
                topic: Name::new(&topic.join(".")).unwrap(),
                                seq,
                payload: Bytes::from(payload),
                chain: None,
            });
            prop_assert_eq!(round_trip(&frame), frame);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let decoder = Decoder::new(1024);
            while let Ok(Some(_)) = decoder.decode(&mut buf) {}
        }
    }
}
