//! Reading JWT key material: PEM public keys and JWK set documents.
//!
//! A key's type decides the algorithms it may verify (RSA → RS*/PS*, EC
//! P-256 → ES256, P-384 → ES384, Ed25519 → EdDSA, oct → HS*); nothing in a
//! token can widen that.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily};

use super::keys::JwtKey;

/// A public key read from PEM, with the algorithm its type pins it to.
pub struct PemKey {
    /// SubjectPublicKeyInfo DER (or PKCS#1 `RSAPublicKey` DER).
    pub der: Vec<u8>,
    pub family: AlgorithmFamily,
    pub default_alg: Algorithm,
}

const OID_RSA: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];

/// The label (`PUBLIC KEY`, `EC PRIVATE KEY`, ...) and the DER bytes of the
/// first PEM block of `pem`.
pub fn pem_block(pem: &[u8]) -> Result<(&str, Vec<u8>), String> {
    let text = std::str::from_utf8(pem).map_err(|_| "not a PEM file".to_owned())?;
    let label = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .ok_or_else(|| "not a PEM file (no -----BEGIN line)".to_owned())?;
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .map(str::trim)
        .collect();
    let der = STANDARD.decode(body).map_err(|_| "PEM body is not valid base64".to_owned())?;
    Ok((label, der))
}

/// Reads a PEM public key (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`).
pub fn parse_public_pem(pem: &[u8]) -> Result<PemKey, String> {
    let (label, der) = pem_block(pem)?;
    if label.contains("PRIVATE KEY") {
        return Err("this is a private key: give tollgate the public key only".to_owned());
    }
    if label != "PUBLIC KEY" && label != "RSA PUBLIC KEY" {
        return Err(format!("unsupported PEM block {label:?}: expected PUBLIC KEY"));
    }
    let has = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
    let (family, default_alg) = if label == "RSA PUBLIC KEY" || has(OID_RSA) {
        (AlgorithmFamily::Rsa, Algorithm::RS256)
    } else if has(OID_P256) {
        (AlgorithmFamily::Ec, Algorithm::ES256)
    } else if has(OID_P384) {
        (AlgorithmFamily::Ec, Algorithm::ES384)
    } else if has(OID_ED25519) {
        (AlgorithmFamily::Ed, Algorithm::EdDSA)
    } else {
        return Err("unsupported key type: expected RSA, EC P-256/P-384 or Ed25519".to_owned());
    };
    // Parse now, so a broken key is a config error rather than a refused token.
    JwtKey::public(None, &der, vec![default_alg]).map_err(|e| format!("invalid public key: {e}"))?;
    Ok(PemKey { der, family, default_alg })
}

/// Parses a JWK set document. Keys that cannot verify signatures (encryption
/// keys, unknown types, broken parameters) are skipped and reported in the
/// second list; an empty usable set is an error.
pub fn parse_jwks(json: &[u8]) -> Result<(Vec<Arc<JwtKey>>, Vec<String>), String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_slice(json).map_err(|e| format!("not a JWK set: {e}"))?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (i, value) in doc.keys.into_iter().enumerate() {
        match jwk_to_key(value) {
            Ok(key) => keys.push(Arc::new(key)),
            Err(why) => skipped.push(format!("keys[{i}]: {why}")),
        }
    }
    if keys.is_empty() {
        return Err(format!("no usable signing key in the JWK set ({} skipped)", skipped.len()));
    }
    Ok((keys, skipped))
}

fn b64(field: &str, value: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')).map_err(|_| format!("{field} is not base64url"))
}

fn jwk_to_key(value: serde_json::Value) -> Result<JwtKey, String> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|e| format!("invalid JWK: {e}"))?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("encryption key (use: enc)".to_owned());
    }
    let declared = match jwk.common.key_algorithm {
        // KeyAlgorithm's names are JOSE names; encryption ones do not parse.
        Some(alg) => Some(format!("{alg:?}").parse::<Algorithm>().map_err(|_| format!("unsupported alg {alg:?}"))?),
        None => None,
    };
    let kid = jwk.common.key_id;
    match &jwk.algorithm {
        AlgorithmParameters::OctetKey(oct) => {
            let alg = declared.unwrap_or(Algorithm::HS256);
            JwtKey::hmac(kid, &b64("k", &oct.value)?, vec![alg])
        }
        AlgorithmParameters::RSA(rsa) => {
            let der = rsa_public_key_der(&b64("n", &rsa.n)?, &b64("e", &rsa.e)?);
            JwtKey::public(kid, &der, vec![declared.unwrap_or(Algorithm::RS256)])
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let alg = match (&ec.curve, declared) {
                (EllipticCurve::P256, None) => Algorithm::ES256,
                (EllipticCurve::P384, None) => Algorithm::ES384,
                (EllipticCurve::P256 | EllipticCurve::P384, Some(alg)) => alg,
                (other, _) => return Err(format!("unsupported curve {other:?}")),
            };
            let mut point = vec![0x04];
            point.extend(b64("x", &ec.x)?);
            point.extend(b64("y", &ec.y)?);
            JwtKey::public(kid, &point, vec![alg])
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            JwtKey::public(kid, &b64("x", &okp.x)?, vec![declared.unwrap_or(Algorithm::EdDSA)])
        }
        _ => Err("unsupported key type".to_owned()),
    }
}

/// DER of PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, exponent INTEGER }`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn push_len(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }
    fn integer(out: &mut Vec<u8>, value: &[u8]) {
        let value = &value[value.iter().take_while(|b| **b == 0).count().min(value.len().saturating_sub(1))..];
        let pad = value.first().is_some_and(|b| b & 0x80 != 0);
        out.push(0x02);
        push_len(out, value.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(value);
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    integer(&mut body, n);
    integer(&mut body, e);
    let mut out = vec![0x30];
    push_len(&mut out, body.len());
    out.extend(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_keys_and_garbage_are_refused() {
        let private = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(parse_public_pem(private).is_err_and(|e| e.contains("private key")));
        assert!(parse_public_pem(b"hello").is_err());
        let bogus = b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";
        assert!(parse_public_pem(bogus).is_err());
    }

    #[test]
    fn jwks_skips_encryption_keys_and_reads_alg() {
        let doc = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA","kid":"h1","alg":"HS512"},
            {"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB","kid":"e1"},
            {"kty":"weird","kid":"w"}
        ]}"#;
        let (keys, skipped) = parse_jwks(doc).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("h1"));
        assert_eq!(keys[0].algorithms, vec![Algorithm::HS512]);
        assert_eq!(skipped.len(), 2);
        assert!(parse_jwks(br#"{"keys":[]}"#).is_err());
    }

    #[test]
    fn der_integers_are_minimal_and_positive() {
        assert_eq!(
            rsa_public_key_der(&[0x00, 0x80], &[0x01, 0x00, 0x01]),
            vec![0x30, 0x09, 0x02, 0x02, 0x00, 0x80, 0x02, 0x03, 0x01, 0x00, 0x01]
        );
        let long = rsa_public_key_der(&[0x7f; 256], &[3]);
        assert_eq!(&long[..4], &[0x30, 0x82, 0x01, 0x07]);
    }
}
