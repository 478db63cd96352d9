//! The JSON payloads of the socket protocol (docs/protocol.md), as types
//! that the daemon serialises and clients (`hashd sum`) deserialise, so the
//! two cannot drift apart key by key.
//!
//! Every reply carries `"ok"`; its type [`OkFlag`] accepts only the value
//! its reply stands for, so a failure never decodes as a success or the
//! reverse.

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize, Serializer};

use crate::JobView;

/// The `"ok"` key: `OkFlag<true>` in success replies, `OkFlag<false>` in
/// failures. Decoding fails on the other value, which is what lets
/// [`HashReply`] tell its variants apart by this key alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OkFlag<const OK: bool>;

impl<const OK: bool> Serialize for OkFlag<OK> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(OK)
    }
}

impl<'de, const OK: bool> Deserialize<'de> for OkFlag<OK> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if bool::deserialize(d)? == OK {
            Ok(OkFlag)
        } else {
            Err(D::Error::custom(format!("expected \"ok\": {OK}")))
        }
    }
}

/// The payload of a HELLO request. The payload itself is optional and the
/// daemon has always read it leniently (a field of the wrong type counts
/// as absent), so both fields decode that way.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloRequest {
    /// The protocol version the client speaks.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub version: Option<u32>,
    /// Asks for HEARTBEAT frames at about this interval.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub heartbeat_ms: Option<u64>,
    /// Asks for PROGRESS frames about running HASH_FD and HASH_PATH
    /// requests at about this interval.
    #[serde(
        default,
        deserialize_with = "lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub progress_ms: Option<u64>,
}

impl HelloRequest {
    /// Reads a HELLO payload; anything unreadable is a HELLO that asks for
    /// nothing, not an error.
    pub fn parse(payload: &[u8]) -> HelloRequest {
        serde_json::from_slice(payload).unwrap_or_default()
    }
}

/// A value of the wrong type reads as absent rather than failing the whole
/// payload.
fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(d)?;
    Ok(T::deserialize(value).ok())
}

/// The answer to HELLO.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloReply {
    /// Always `true`.
    pub ok: OkFlag<true>,
    /// The protocol version the daemon speaks ([`super::frame::VERSION`]).
    pub version: u32,
    /// `hashd X.Y.Z`; empty if a daemon did not say.
    #[serde(default)]
    pub server: String,
    /// The heartbeat interval granted, present only when HELLO asked for
    /// one: a client that did not ask sees the reply it always saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ms: Option<u64>,
    /// The PROGRESS interval granted, present only when HELLO asked for
    /// one; a daemon that predates PROGRESS frames leaves it out, and its
    /// clients then learn of a file only from its reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_ms: Option<u64>,
}

/// The payload of a PROGRESS frame: how far the request with the frame's
/// tag has got. Sent only while the request is unanswered and only when
/// the count has grown since the last one; never after its REPLY.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Bytes of the file hashed so far (at most its length).
    pub bytes: u64,
}

/// A finished hash job (HASH_FD, HASH_PATH, STREAM_END).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestReply {
    /// Always `true`.
    pub ok: OkFlag<true>,
    /// The algorithms' names, canonical and comma-separated as the
    /// request listed them (`md5`, `md5,sha256`).
    pub algorithm: String,
    /// The first algorithm's digest in lower-case hex.
    pub hash: String,
    /// Bytes hashed.
    pub size: u64,
    /// Every digest, hex, by algorithm name: present only when the request
    /// named several algorithms, so that a one-algorithm client sees the
    /// reply it always saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<std::collections::BTreeMap<String, String>>,
}

/// A request that failed: the answer to any request, and, with tag 0, the
/// protocol error sent just before the daemon closes the connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// Always `false`.
    pub ok: OkFlag<false>,
    /// Why, in words for people.
    pub error: String,
    /// Present on the failures of hash jobs only (that is where the
    /// daemon has always sent it): `true` when its file queue was full and
    /// the same request may be sent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub busy: Option<bool>,
}

impl ErrorReply {
    /// A failure without the `busy` key: a request refused before any job
    /// was started (unknown algorithm, path refused, unknown id).
    pub fn new(error: impl Into<String>) -> ErrorReply {
        ErrorReply {
            ok: OkFlag,
            error: error.into(),
            busy: None,
        }
    }

    /// The reply with tag 0 that tells a client why its connection is
    /// about to be closed.
    pub fn protocol(reason: impl std::fmt::Display) -> ErrorReply {
        ErrorReply::new(format!("protocol error: {reason}"))
    }

    /// Whether the request may simply be sent again.
    pub fn is_busy(&self) -> bool {
        self.busy == Some(true)
    }
}

/// The answer to a hash job: its digest or why there is none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HashReply {
    /// `"ok": true`.
    Digest(DigestReply),
    /// `"ok": false`.
    Error(ErrorReply),
}

/// The answer to LOOKUP for an id that names a job; an id that does not
/// gets an [`ErrorReply`] saying `INVALID_ID`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupReply {
    /// Always `true`.
    pub ok: OkFlag<true>,
    /// The job, as `GET /gethash` shows it.
    pub job: JobView,
}

/// The answer to STATS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsReply {
    /// Always `true`.
    pub ok: OkFlag<true>,
    /// The same document as `GET /stats`.
    pub stats: serde_json::Value,
}

/// Serialises a reply payload. The types above have string keys and no
/// non-finite floats, so this cannot fail.
pub fn to_payload(reply: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(reply).expect("socket replies always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn wire(reply: &impl Serialize) -> Value {
        serde_json::from_slice(&to_payload(reply)).unwrap()
    }

    /// The JSON the daemon wrote with `json!` before these types existed:
    /// the same keys and values, only their order may differ.
    #[test]
    fn replies_carry_the_keys_and_values_they_always_did() {
        let hello = HelloReply {
            ok: OkFlag,
            version: 1,
            server: "hashd 0.1.0".into(),
            heartbeat_ms: None,
            progress_ms: None,
        };
        assert_eq!(
            wire(&hello),
            json!({"ok": true, "version": 1, "server": "hashd 0.1.0"})
        );
        let hello = HelloReply {
            heartbeat_ms: Some(40),
            ..hello
        };
        assert_eq!(
            wire(&hello),
            json!({"ok": true, "version": 1, "server": "hashd 0.1.0", "heartbeat_ms": 40})
        );
        let digest = HashReply::Digest(DigestReply {
            ok: OkFlag,
            algorithm: "md5".into(),
            hash: "ab".into(),
            size: 7,
            hashes: None,
        });
        assert_eq!(
            wire(&digest),
            json!({"ok": true, "algorithm": "md5", "hash": "ab", "size": 7})
        );
        let busy = HashReply::Error(ErrorReply {
            busy: Some(true),
            ..ErrorReply::new("busy")
        });
        assert_eq!(
            wire(&busy),
            json!({"ok": false, "error": "busy", "busy": true})
        );
        assert_eq!(
            wire(&ErrorReply::new("INVALID_ID")),
            json!({"ok": false, "error": "INVALID_ID"})
        );
        assert_eq!(
            wire(&ErrorReply::protocol("unknown frame kind 0x42")),
            json!({"ok": false, "error": "protocol error: unknown frame kind 0x42"})
        );
        let stats = StatsReply {
            ok: OkFlag,
            stats: json!({"hashers": []}),
        };
        assert_eq!(wire(&stats), json!({"ok": true, "stats": {"hashers": []}}));
    }

    #[test]
    fn ok_decides_which_reply_a_payload_is() {
        let ok = br#"{"ok":true,"algorithm":"md5","hash":"ab","size":1}"#;
        assert!(matches!(
            serde_json::from_slice::<HashReply>(ok),
            Ok(HashReply::Digest(_))
        ));
        let failed = br#"{"ok":false,"error":"cannot read","busy":false}"#;
        match serde_json::from_slice::<HashReply>(failed).unwrap() {
            HashReply::Error(e) => assert!(!e.is_busy()),
            other => panic!("{other:?}"),
        }
        for bad in [
            &br#"{"ok":false,"algorithm":"md5","hash":"ab","size":1}"#[..],
            br#"{"ok":true,"error":"x"}"#,
            br#"{"ok":1,"error":"x"}"#,
            br#"{"error":"x"}"#,
        ] {
            assert!(serde_json::from_slice::<HashReply>(bad).is_err());
        }
    }

    #[test]
    fn a_hello_payload_is_read_leniently() {
        let asked = |p: &[u8]| HelloRequest::parse(p).heartbeat_ms;
        assert_eq!(asked(br#"{"version":1,"heartbeat_ms":20}"#), Some(20));
        assert_eq!(asked(br#"{"heartbeat_ms":20}"#), Some(20));
        assert_eq!(asked(br#"{"version":"one","heartbeat_ms":20}"#), Some(20));
        assert_eq!(asked(br#"{"version":1,"heartbeat_ms":-5}"#), None);
        assert_eq!(asked(br#"{"version":1}"#), None);
        assert_eq!(asked(b""), None);
        assert_eq!(asked(b"[1]"), None);
        let sent = HelloRequest {
            version: Some(1),
            heartbeat_ms: Some(1000),
            progress_ms: None,
        };
        assert_eq!(wire(&sent), json!({"version": 1, "heartbeat_ms": 1000}));
        let progress = |p: &[u8]| HelloRequest::parse(p).progress_ms;
        assert_eq!(progress(br#"{"version":1,"progress_ms":200}"#), Some(200));
        assert_eq!(progress(br#"{"version":1,"progress_ms":"fast"}"#), None);
        assert_eq!(progress(br#"{"version":1,"heartbeat_ms":20}"#), None);
        assert_eq!(wire(&Progress { bytes: 7 }), json!({"bytes": 7}));
    }
}
