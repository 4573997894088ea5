//! Reservations (SLR/PLR, CONTRACT section 5) as pure rules, in three parts: `codes`
//! (the request, confirmation and return codes byte for byte), `authorization` (the signed
//! authorization code document) and `state` (the state machine and what an update holds
//! while it is in transit). No I/O and no clock: `now` comes in as an argument. Everything
//! is re-exported here, so callers name `domain::reservation::…` as before.

mod authorization;
mod codes;
mod state;

pub use authorization::*;
pub use codes::*;
pub use state::*;

pub const KEY_HASH_LEN: usize = 10;
pub const NONCE_LEN: usize = 6;

pub type KeyHash = [u8; KEY_HASH_LEN];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N
        || !s
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The worked example printed in docs/protocol.md, pinned so the page stays true.
#[cfg(test)]
mod worked_example {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    #[test]
    fn docs_worked_example() {
        let agent = SigningKey::from_bytes(&[7u8; 32]);
        let authority = SigningKey::from_bytes(&[3u8; 32]);
        let pk = agent.verifying_key().to_bytes();
        let rc = make_request_code("CUCM", "SN1", &pk, [1, 2, 3, 4, 5, 6]);
        let a = Authorization {
            universal: false,
            version: 1,
            piid: "res_0692c2a80abcdef".into(),
            timestamp_ms: 1_764_500_000_000,
            key_hash: key_hash(&pk),
            nonce: [1, 2, 3, 4, 5, 6],
            entitlements: vec![CodeEntitlement {
                tag: "regid.2016-07.com.cisco.UCM_Enhanced,12.0".into(),
                count: 2,
                start_date: String::new(),
                end_date: String::new(),
                license_type: "PERPETUAL".into(),
                display_name: "UC Manager Enhanced License".into(),
                description: "UC Manager Enhanced License".into(),
            }],
            pid: "CUCM".into(),
            sn: "SN1".into(),
        };
        let bytes = a.code_bytes();
        let sig = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            authority.sign(bytes.as_bytes()).to_bytes(),
        );
        let doc = a.document(&sig);
        let cc = confirmation_code(&bytes, &a.key_hash);
        let ret = make_return_code(&agent, &a.piid, &bytes);
        assert_eq!(
            hex(&pk),
            "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
        );
        assert_eq!(key_hash_hex(&a.key_hash), "fe812c12f3ab4ce6ac5d");
        assert_eq!(rc, "CB-ZCUCM:SN1-72ASYEXTVNGONLC5AEBAGBAFAY-8102");
        assert!(doc.contains("<signature>SIafAfZBBVEKXUk67aW2NbnfQI4oFnwP89HaOGinFXBSuh/wNJiAz5nIMn/djPWLxfizpoZEf5gTLMcLW2m7Cw==</signature>"));
        assert_eq!(cc, "376f4d8f");
        assert!(ret.starts_with(
            "RC-5JFGYY7CTRJAVPXVKB5RGLWF7GKUO5VOX27HXESCD3VGSFCG2IWPZ4WFHEYKWY4R6TX4ZJGFKOLWPQ"
        ));
        assert_eq!(
            codes::return_message(&a.piid, &bytes),
            "satellite-return\nres_0692c2a80abcdef\n79964bc2c0cc70595357123db1e5ebeb16b57ba4cc77c9ed6972d396672f1af5"
        );
    }
}
