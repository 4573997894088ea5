//! Reads when a PEM certificate stops being valid (X.509 `notAfter`), so the server can
//! warn before its TLS certificate ends, whether it made it or an admin dropped one in.
//! A small DER walk over the fields before `validity`; anything unexpected is `None`.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

/// One DER element: its tag, its contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as unix seconds.
fn time(tag: u8, v: &[u8]) -> Option<i64> {
    let (year, rest) = match (tag, v.len()) {
        (0x17, 13) => {
            let yy = digits(&v[..2])? as i32;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &v[2..])
        }
        (0x18, 15) => (digits(&v[..4])? as i32, &v[4..]),
        _ => return None,
    };
    if rest.get(10) != Some(&b'Z') {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year, digits(&rest[0..2])?, digits(&rest[2..4])?)?;
    let at = NaiveTime::from_hms_opt(
        digits(&rest[4..6])?,
        digits(&rest[6..8])?,
        digits(&rest[8..10])?,
    )?;
    Some(NaiveDateTime::new(date, at).and_utc().timestamp())
}

/// `notAfter` of a DER certificate, in unix seconds.
pub fn not_after_der(der: &[u8]) -> Option<i64> {
    let (0x30, cert, _) = element(der)? else {
        return None;
    };
    let (0x30, tbs, _) = element(cert)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, after) = element(rest)?;
    if tag == 0xa0 {
        rest = after; // explicit version
    }
    // serial, signature algorithm, issuer
    for expected in [0x02, 0x30, 0x30] {
        let (tag, _, after) = element(rest)?;
        if tag != expected {
            return None;
        }
        rest = after;
    }
    let (0x30, validity, _) = element(rest)? else {
        return None;
    };
    let (_, _, after_before) = element(validity)?;
    let (tag, value, _) = element(after_before)?;
    time(tag, value)
}

/// `notAfter` of the first certificate in a PEM file's text.
pub fn not_after_pem(pem: &str) -> Option<i64> {
    use base64::Engine;
    let body: String = pem
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)?
        .split("-----END CERTIFICATE-----")
        .next()?
        .split_whitespace()
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    not_after_der(&der)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_times_of_both_kinds() {
        assert_eq!(time(0x17, b"300101000000Z"), Some(1_893_456_000));
        assert_eq!(time(0x18, b"20300101000000Z"), Some(1_893_456_000));
        assert_eq!(time(0x17, b"301301000000Z"), None);
        assert_eq!(time(0x18, b"2030010100000Z"), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = not_after_der(&bytes);
        }

        #[test]
        fn arbitrary_pem_never_panics(text in ".{0,200}") {
            let _ = not_after_pem(&format!("-----BEGIN CERTIFICATE-----\n{text}\n-----END CERTIFICATE-----"));
        }
    }
}
