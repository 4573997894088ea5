//! Reservations (SLR/PLR, CONTRACT section 5) as pure rules: the request, authorization,
//! confirmation and return codes byte for byte, the state machine, and what an update
//! holds while it is in transit. No I/O and no clock: `now` comes in as an argument.

use super::DomainError;
use data_encoding::BASE32_NOPAD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const KEY_HASH_LEN: usize = 10;
pub const NONCE_LEN: usize = 6;
const REQUEST_PREFIX: &str = "CB-Z";
const RETURN_PREFIX: &str = "RC-";
const CODE_OPEN: &str = "<authorizationCode>";
const CODE_CLOSE: &str = "</authorizationCode>";

pub type KeyHash = [u8; KEY_HASH_LEN];

/// The first 10 bytes of sha256 of a raw ed25519 public key.
pub fn key_hash(public_key: &[u8; 32]) -> KeyHash {
    let digest = Sha256::digest(public_key);
    let mut out = [0u8; KEY_HASH_LEN];
    out.copy_from_slice(&digest[..KEY_HASH_LEN]);
    out
}

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

/// The checksum `C`: 4 lower-case hex digits of sha256 of everything before the last `-`.
fn checksum(head: &str) -> String {
    hex(&Sha256::digest(head.as_bytes())[..2])
}

/// A parsed request code: the UDI it names and the key hash and nonce it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestCode {
    pub text: String,
    pub pid: String,
    pub sn: String,
    pub key_hash: KeyHash,
    pub nonce: [u8; NONCE_LEN],
}

/// `CB-Z<PID>:<SN>-<B>-<C>`: B is base32 of key hash ‖ nonce, C the checksum.
pub fn make_request_code(pid: &str, sn: &str, public_key: &[u8; 32], nonce: [u8; 6]) -> String {
    let mut b = key_hash(public_key).to_vec();
    b.extend_from_slice(&nonce);
    let head = format!("{REQUEST_PREFIX}{pid}:{sn}-{}", BASE32_NOPAD.encode(&b));
    let c = checksum(&head);
    format!("{head}-{c}")
}

fn invalid_request(message: &str) -> DomainError {
    DomainError::invalid("invalid_request_code", "request_code", message)
}

pub fn parse_request_code(raw: &str) -> Result<RequestCode, DomainError> {
    let text = raw.trim();
    let (head, c) = text
        .rsplit_once('-')
        .ok_or_else(|| invalid_request("A request code looks like CB-Z<PID>:<SN>-<B>-<C>."))?;
    let rest = head
        .strip_prefix(REQUEST_PREFIX)
        .ok_or_else(|| invalid_request("A request code starts with CB-Z."))?;
    if checksum(head) != c {
        return Err(invalid_request(
            "The request code's checksum does not match: it was mistyped or cut short. Copy it again from the product.",
        ));
    }
    let (udi, b) = rest
        .rsplit_once('-')
        .ok_or_else(|| invalid_request("A request code looks like CB-Z<PID>:<SN>-<B>-<C>."))?;
    let (pid, sn) = udi
        .split_once(':')
        .ok_or_else(|| invalid_request("The request code names no UDI (PID:SN)."))?;
    super::instance::check_udi(pid, sn, None)
        .map_err(|_| invalid_request("The request code's UDI is not valid."))?;
    let bytes = BASE32_NOPAD
        .decode(b.as_bytes())
        .ok()
        .filter(|v| v.len() == KEY_HASH_LEN + NONCE_LEN)
        .ok_or_else(|| {
            invalid_request("The request code's key part is not 26 base32 characters.")
        })?;
    let mut key_hash = [0u8; KEY_HASH_LEN];
    key_hash.copy_from_slice(&bytes[..KEY_HASH_LEN]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&bytes[KEY_HASH_LEN..]);
    Ok(RequestCode {
        text: text.to_string(),
        pid: pid.to_string(),
        sn: sn.to_string(),
        key_hash,
        nonce,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservationState {
    Pending,
    Confirmed,
    Updating,
    Returned,
    Cancelled,
    Removed,
}

/// What can happen to a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Confirm,
    Update,
    Cancel,
    Remove,
    Return,
}

impl Transition {
    fn verb(self) -> &'static str {
        match self {
            Transition::Confirm => "confirm",
            Transition::Update => "update",
            Transition::Cancel => "cancel",
            Transition::Remove => "remove",
            Transition::Return => "return",
        }
    }
}

impl ReservationState {
    pub const ALL: [ReservationState; 6] = [
        ReservationState::Pending,
        ReservationState::Confirmed,
        ReservationState::Updating,
        ReservationState::Returned,
        ReservationState::Cancelled,
        ReservationState::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReservationState::Pending => "pending",
            ReservationState::Confirmed => "confirmed",
            ReservationState::Updating => "updating",
            ReservationState::Returned => "returned",
            ReservationState::Cancelled => "cancelled",
            ReservationState::Removed => "removed",
        }
    }

    /// Live reservations hold licenses; the others are history.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            ReservationState::Pending | ReservationState::Confirmed | ReservationState::Updating
        )
    }

    /// The state `t` leads to from here, or 409 `invalid_state`.
    pub fn apply(self, t: Transition) -> Result<ReservationState, DomainError> {
        use ReservationState as S;
        use Transition as T;
        let next = match (self, t) {
            (S::Pending | S::Updating, T::Confirm) => Some(S::Confirmed),
            (S::Confirmed | S::Updating, T::Update) => Some(S::Updating),
            (S::Pending, T::Cancel) => Some(S::Cancelled),
            (S::Pending | S::Confirmed | S::Updating, T::Remove) => Some(S::Removed),
            (S::Pending | S::Confirmed | S::Updating, T::Return) => Some(S::Returned),
            _ => None,
        };
        next.ok_or_else(|| {
            DomainError::conflict(
                "invalid_state",
                format!(
                    "A {} reservation cannot be {}ed.",
                    self.as_str(),
                    t.verb().trim_end_matches('e')
                ),
            )
        })
    }
}

impl std::str::FromStr for ReservationState {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                DomainError::invalid(
                    "invalid_state",
                    "state",
                    "state is pending, confirmed, updating, returned, cancelled or removed.",
                )
            })
    }
}

/// While an update is in transit, each tag holds the larger of its old and new count;
/// once confirmed, the new counts alone.
pub fn in_transit(
    old: &BTreeMap<String, i64>,
    new: &BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    let mut held = old.clone();
    for (tag, n) in new {
        let e = held.entry(tag.clone()).or_insert(0);
        *e = (*e).max(*n);
    }
    held.retain(|_, n| *n > 0);
    held
}

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

/// Hex sha256 of the code bytes: what a return code signs, and how a server tells codes apart.
pub fn code_hash_hex(code_bytes: &str) -> String {
    hex(&Sha256::digest(code_bytes.as_bytes()))
}

/// 8 lower-case hex digits: the first 4 bytes of sha256(code bytes ‖ key hash).
pub fn confirmation_code(code_bytes: &str, key_hash: &KeyHash) -> String {
    let mut h = Sha256::new();
    h.update(code_bytes.as_bytes());
    h.update(key_hash);
    hex(&h.finalize()[..4])
}

fn return_message(piid: &str, code_bytes: &str) -> String {
    format!("satellite-return\n{piid}\n{}", code_hash_hex(code_bytes))
}

/// `RC-` + base32 of the agent's public key ‖ its signature over the return message.
pub fn make_return_code(key: &SigningKey, piid: &str, code_bytes: &str) -> String {
    let sig = key.sign(return_message(piid, code_bytes).as_bytes());
    let mut bytes = key.verifying_key().to_bytes().to_vec();
    bytes.extend_from_slice(&sig.to_bytes());
    format!("{RETURN_PREFIX}{}", BASE32_NOPAD.encode(&bytes))
}

/// A return code taken apart (not yet checked against any reservation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnCode {
    pub public_key: [u8; 32],
    pub signature: [u8; 64],
}

impl ReturnCode {
    pub fn key_hash(&self) -> KeyHash {
        key_hash(&self.public_key)
    }

    /// Whether it returns the reservation `piid` whose current code bytes hash to
    /// `code_hash_hex`.
    pub fn verifies(&self, piid: &str, code_hash_hex: &str) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.public_key) else {
            return false;
        };
        let msg = format!("satellite-return\n{piid}\n{code_hash_hex}");
        key.verify(msg.as_bytes(), &Signature::from_bytes(&self.signature))
            .is_ok()
    }

    /// A fingerprint of the code, to recognise it when it is entered again.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.public_key);
        h.update(self.signature);
        hex(&h.finalize())
    }
}

pub fn invalid_return_code(message: &str) -> DomainError {
    DomainError::invalid("invalid_return_code", "return_code", message)
}

pub fn parse_return_code(raw: &str) -> Result<ReturnCode, DomainError> {
    let bytes = raw
        .trim()
        .strip_prefix(RETURN_PREFIX)
        .and_then(|b| BASE32_NOPAD.decode(b.as_bytes()).ok())
        .filter(|b| b.len() == 96)
        .ok_or_else(|| {
            invalid_return_code("A return code is RC- and 154 base32 characters; copy it again.")
        })?;
    let mut public_key = [0u8; 32];
    public_key.copy_from_slice(&bytes[..32]);
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&bytes[32..]);
    Ok(ReturnCode {
        public_key,
        signature,
    })
}

/// The seeds' date style: `2020-Mar-04 UTC`.
pub fn code_date(d: chrono::NaiveDate) -> String {
    d.format("%Y-%b-%d UTC").to_string()
}

pub fn key_hash_hex(k: &KeyHash) -> String {
    hex(k)
}

pub fn nonce_hex(n: &[u8; NONCE_LEN]) -> String {
    hex(n)
}

pub fn parse_key_hash(s: &str) -> Option<KeyHash> {
    unhex::<KEY_HASH_LEN>(s)
}

pub fn parse_nonce(s: &str) -> Option<[u8; NONCE_LEN]> {
    unhex::<NONCE_LEN>(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent_key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    /// The worked example of docs/protocol.md.
    #[test]
    fn request_code_worked_example() {
        let key = agent_key();
        let pk = key.verifying_key().to_bytes();
        let code = make_request_code("CUCM", "SN1", &pk, [1, 2, 3, 4, 5, 6]);
        let parsed = parse_request_code(&code).unwrap();
        assert_eq!(parsed.pid, "CUCM");
        assert_eq!(parsed.sn, "SN1");
        assert_eq!(parsed.key_hash, key_hash(&pk));
        assert_eq!(parsed.nonce, [1, 2, 3, 4, 5, 6]);
        let b = code.rsplit('-').nth(1).unwrap();
        assert_eq!(b.len(), 26);
        assert!(b
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        let c = code.rsplit('-').next().unwrap();
        assert_eq!(c.len(), 4);
        println!("request code: {code}");
    }

    #[test]
    fn a_mistyped_request_code_fails_its_checksum() {
        let pk = agent_key().verifying_key().to_bytes();
        let code = make_request_code("C9300-24T", "FOC1-2", &pk, [9; 6]);
        assert_eq!(parse_request_code(&code).unwrap().sn, "FOC1-2");
        let typo = code.replacen("FOC", "F0C", 1);
        let err = parse_request_code(&typo).unwrap_err();
        assert!(matches!(
            err,
            DomainError::Invalid {
                code: "invalid_request_code",
                ..
            }
        ));
        assert!(parse_request_code("hello").is_err());
        assert!(parse_request_code("").is_err());
    }

    #[test]
    fn the_state_machine_allows_only_its_transitions() {
        use ReservationState as S;
        use Transition as T;
        assert_eq!(S::Pending.apply(T::Confirm).unwrap(), S::Confirmed);
        assert_eq!(S::Confirmed.apply(T::Update).unwrap(), S::Updating);
        assert_eq!(S::Updating.apply(T::Update).unwrap(), S::Updating);
        assert_eq!(S::Updating.apply(T::Confirm).unwrap(), S::Confirmed);
        assert_eq!(S::Pending.apply(T::Cancel).unwrap(), S::Cancelled);
        assert!(S::Confirmed.apply(T::Cancel).is_err());
        assert!(S::Pending.apply(T::Update).is_err());
        assert!(S::Returned.apply(T::Confirm).is_err());
        assert!(S::Removed.apply(T::Remove).is_err());
        for s in S::ALL {
            assert_eq!(s.as_str().parse::<S>().unwrap(), s);
            assert_eq!(s.apply(T::Remove).is_ok(), s.is_live());
        }
        let err = S::Confirmed.apply(T::Cancel).unwrap_err();
        assert!(matches!(
            err,
            DomainError::Conflict {
                code: "invalid_state",
                ..
            }
        ));
    }

    #[test]
    fn an_update_holds_the_larger_count_per_tag() {
        let m = |v: &[(&str, i64)]| -> BTreeMap<String, i64> {
            v.iter().map(|(t, n)| (t.to_string(), *n)).collect()
        };
        let held = in_transit(
            &m(&[("a", 5), ("b", 2)]),
            &m(&[("a", 3), ("c", 4), ("b", 0)]),
        );
        assert_eq!(held, m(&[("a", 5), ("b", 2), ("c", 4)]));
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

/// The worked example printed in docs/protocol.md, pinned so the page stays true.
#[cfg(test)]
mod worked_example {
    use super::*;

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
            return_message(&a.piid, &bytes),
            "satellite-return\nres_0692c2a80abcdef\n79964bc2c0cc70595357123db1e5ebeb16b57ba4cc77c9ed6972d396672f1af5"
        );
    }
}
