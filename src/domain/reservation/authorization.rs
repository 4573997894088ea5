//! The authorization code: what it grants, its exact signed bytes
//! (`<authorizationCode>…</authorizationCode>`), the whole `<specificPLR>` document, and
//! reading one back to check its signature.

use super::{hex, unhex, KeyHash, KEY_HASH_LEN, NONCE_LEN};
use crate::domain::DomainError;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use std::collections::BTreeMap;

const CODE_OPEN: &str = "<authorizationCode>";
const CODE_CLOSE: &str = "</authorizationCode>";

/// One entitlement of an authorization code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeEntitlement {
    pub tag: String,
    pub count: i64,
    /// `YYYY-Mon-DD UTC`, empty for perpetual licenses (as in the seeds).
    pub start_date: String,
    pub end_date: String,
    /// `PERPETUAL`, `TERM` or `SUBSCRIPTION`.
    pub license_type: String,
    pub display_name: String,
    pub description: String,
}

/// What an authorization code says, before it is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    pub universal: bool,
    pub version: i64,
    pub piid: String,
    /// Milliseconds since the epoch (as in the seeds).
    pub timestamp_ms: i64,
    pub key_hash: KeyHash,
    pub nonce: [u8; NONCE_LEN],
    pub entitlements: Vec<CodeEntitlement>,
    pub pid: String,
    pub sn: String,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Authorization {
    /// The exact `<authorizationCode>…</authorizationCode>` bytes that are signed.
    pub fn code_bytes(&self) -> String {
        let mut s = String::from(CODE_OPEN);
        s.push_str(&format!(
            "<flag>{}</flag><version>{}</version><piid>{}</piid><timestamp>{}</timestamp>\
             <keyHash>{}</keyHash><requestNonce>{}</requestNonce><entitlements>",
            if self.universal { "U" } else { "A" },
            self.version,
            esc(&self.piid),
            self.timestamp_ms,
            hex(&self.key_hash),
            hex(&self.nonce)
        ));
        for e in &self.entitlements {
            s.push_str(&format!(
                "<entitlement><tag>{}</tag><count>{}</count><startDate>{}</startDate>\
                 <endDate>{}</endDate><licenseType>{}</licenseType><displayName>{}</displayName>\
                 <tagDescription>{}</tagDescription><subscriptionID></subscriptionID></entitlement>",
                esc(&e.tag),
                e.count,
                esc(&e.start_date),
                esc(&e.end_date),
                esc(&e.license_type),
                esc(&e.display_name),
                esc(&e.description)
            ));
        }
        s.push_str("</entitlements>");
        s.push_str(CODE_CLOSE);
        s
    }

    /// The whole document, signed with `sign` (the authority key's signature over the
    /// code bytes, base64).
    pub fn document(&self, signature_b64: &str) -> String {
        format!(
            "<specificPLR>{}<signature>{}</signature><udi>P:{},S:{}</udi></specificPLR>",
            self.code_bytes(),
            signature_b64,
            esc(&self.pid),
            esc(&self.sn)
        )
    }
}

/// An authorization code document as read back: the exact signed bytes, the signature
/// and what the code says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedAuthorization {
    pub code_bytes: String,
    pub signature: Vec<u8>,
    pub authorization: Authorization,
}

fn bad_code(message: impl Into<String>) -> DomainError {
    DomainError::invalid("invalid_authorization_code", "authorization_code", message)
}

/// Reads an authorization code document. It does not check the signature (that needs
/// the authority key): see `ParsedAuthorization::verify`.
pub fn parse_authorization(doc: &str) -> Result<ParsedAuthorization, DomainError> {
    use quick_xml::events::Event;
    let doc = doc.trim();
    let start = doc
        .find(CODE_OPEN)
        .ok_or_else(|| bad_code("No <authorizationCode> element."))?;
    let end = doc
        .find(CODE_CLOSE)
        .map(|e| e + CODE_CLOSE.len())
        .filter(|e| *e > start)
        .ok_or_else(|| bad_code("No </authorizationCode> element."))?;
    if doc[end..].contains(CODE_OPEN) || doc[..start].contains(CODE_CLOSE) {
        return Err(bad_code("More than one <authorizationCode> element."));
    }
    let code_bytes = doc[start..end].to_string();

    let mut reader = quick_xml::Reader::from_str(doc);
    let mut path: Vec<String> = vec![];
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut entitlements: Vec<BTreeMap<String, String>> = vec![];
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).to_string();
                if name == "entitlement" {
                    entitlements.push(BTreeMap::new());
                }
                path.push(name);
            }
            Ok(Event::End(_)) => {
                path.pop();
            }
            Ok(Event::Text(t)) => {
                let text = t
                    .decode()
                    .ok()
                    .and_then(|s| quick_xml::escape::unescape(&s).ok().map(|c| c.into_owned()))
                    .ok_or_else(|| bad_code("The document is not valid XML."))?;
                let Some(name) = path.last() else { continue };
                if path.iter().any(|p| p == "entitlement") {
                    if let Some(e) = entitlements.last_mut() {
                        e.entry(name.clone()).or_default().push_str(&text);
                    }
                } else {
                    fields.entry(name.clone()).or_default().push_str(&text);
                }
            }
            Ok(Event::GeneralRef(r)) => {
                // quick-xml reports `&amp;` and friends apart from the text around them.
                let name = String::from_utf8_lossy(&r).to_string();
                let ch = match name.as_str() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => return Err(bad_code("The document uses an unknown entity.")),
                };
                let Some(last) = path.last() else { continue };
                if path.iter().any(|p| p == "entitlement") {
                    if let Some(e) = entitlements.last_mut() {
                        e.entry(last.clone()).or_default().push_str(ch);
                    }
                } else {
                    fields.entry(last.clone()).or_default().push_str(ch);
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(_) => return Err(bad_code("The document is not valid XML.")),
        }
    }
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let universal = match get("flag").as_str() {
        "U" => true,
        "A" => false,
        _ => return Err(bad_code("<flag> is A or U.")),
    };
    let version = get("version")
        .parse()
        .map_err(|_| bad_code("<version> is a number."))?;
    let timestamp_ms = get("timestamp")
        .parse()
        .map_err(|_| bad_code("<timestamp> is a number."))?;
    let key_hash = unhex::<KEY_HASH_LEN>(&get("keyHash"))
        .ok_or_else(|| bad_code("<keyHash> is 20 hex digits."))?;
    let nonce = unhex::<NONCE_LEN>(&get("requestNonce"))
        .ok_or_else(|| bad_code("<requestNonce> is 12 hex digits."))?;
    let udi = get("udi");
    let (pid, sn) = udi
        .strip_prefix("P:")
        .and_then(|r| r.split_once(",S:"))
        .ok_or_else(|| bad_code("<udi> is P:<pid>,S:<sn>."))?;
    let signature = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        get("signature").trim(),
    )
    .map_err(|_| bad_code("<signature> is not base64."))?;
    let entitlements = entitlements
        .into_iter()
        .map(|e| {
            let g = |k: &str| e.get(k).cloned().unwrap_or_default();
            Ok(CodeEntitlement {
                tag: g("tag"),
                count: g("count")
                    .parse()
                    .map_err(|_| bad_code("<count> is a number."))?,
                start_date: g("startDate"),
                end_date: g("endDate"),
                license_type: g("licenseType"),
                display_name: g("displayName"),
                description: g("tagDescription"),
            })
        })
        .collect::<Result<Vec<_>, DomainError>>()?;
    let authorization = Authorization {
        universal,
        version,
        piid: get("piid"),
        timestamp_ms,
        key_hash,
        nonce,
        entitlements,
        pid: pid.to_string(),
        sn: sn.to_string(),
    };
    Ok(ParsedAuthorization {
        code_bytes,
        signature,
        authorization,
    })
}

impl ParsedAuthorization {
    /// True when `authority` signed exactly these code bytes.
    pub fn verify(&self, authority: &VerifyingKey) -> bool {
        Signature::from_slice(&self.signature)
            .map(|sig| authority.verify(self.code_bytes.as_bytes(), &sig).is_ok())
            .unwrap_or(false)
    }
}

/// The seeds' date style: `2020-Mar-04 UTC`.
pub fn code_date(d: chrono::NaiveDate) -> String {
    d.format("%Y-%b-%d UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn agent_key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn authorization() -> Authorization {
        Authorization {
            universal: false,
            version: 1,
            piid: "res_1".into(),
            timestamp_ms: 1_700_000_000_000,
            key_hash: key_hash(&agent_key().verifying_key().to_bytes()),
            nonce: [1, 2, 3, 4, 5, 6],
            entitlements: vec![CodeEntitlement {
                tag: "regid.x&y<z>".into(),
                count: 3,
                start_date: code_date(chrono::NaiveDate::from_ymd_opt(2026, 3, 4).unwrap()),
                end_date: String::new(),
                license_type: "PERPETUAL".into(),
                display_name: "X".into(),
                description: "X license".into(),
            }],
            pid: "CUCM".into(),
            sn: "SN1".into(),
        }
    }

    #[test]
    fn an_authorization_code_round_trips_and_its_signature_covers_the_exact_bytes() {
        let authority = SigningKey::from_bytes(&[3u8; 32]);
        let a = authorization();
        let bytes = a.code_bytes();
        let sig = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            authority.sign(bytes.as_bytes()).to_bytes(),
        );
        let doc = a.document(&sig);
        assert!(
            doc.starts_with("<specificPLR><authorizationCode><flag>A</flag><version>1</version>")
        );
        let parsed = parse_authorization(&doc).unwrap();
        assert_eq!(parsed.code_bytes, bytes);
        assert_eq!(parsed.authorization, a);
        assert!(parsed.verify(&authority.verifying_key()));
        let other = SigningKey::from_bytes(&[4u8; 32]);
        assert!(!parsed.verify(&other.verifying_key()));
        let tampered = doc.replace("<count>3</count>", "<count>9</count>");
        let t = parse_authorization(&tampered).unwrap();
        assert!(!t.verify(&authority.verifying_key()));
        assert!(parse_authorization("<specificPLR/>").is_err());
    }

    #[test]
    fn confirmation_and_return_codes() {
        let a = authorization();
        let bytes = a.code_bytes();
        let c = confirmation_code(&bytes, &a.key_hash);
        assert_eq!(c.len(), 8);
        assert!(c
            .chars()
            .all(|ch| ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase()));
        let key = agent_key();
        let rc = make_return_code(&key, "res_1", &bytes);
        assert_eq!(rc.len(), 3 + 154);
        let parsed = parse_return_code(&rc).unwrap();
        assert_eq!(parsed.key_hash(), a.key_hash);
        assert!(parsed.verifies("res_1", &code_hash_hex(&bytes)));
        assert!(!parsed.verifies("res_2", &code_hash_hex(&bytes)));
        assert!(!parsed.verifies("res_1", &code_hash_hex("<authorizationCode/>")));
        assert!(parse_return_code("RC-AAAA").is_err());
    }
}
