//! Unit tests of `jwt.rs`.
use super::*;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

const SECRET: &[u8] = b"jwt-unit-test-secret-0123456789abcdef";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn policy(rules: ClaimRules) -> JwtPolicy {
    let key = JwtKey::hmac(Some("k1".into()), SECRET, vec![Algorithm::HS256]).unwrap_or_else(|e| panic!("{e}"));
    JwtPolicy::new(
        vec![JwtKeySource::Static(Arc::new(key))],
        Carriers { header: true, ..Carriers::default() },
        "token".into(),
        "c".into(),
        rules,
        vec![("sub".into(), HeaderName::from_static("x-auth-subject"))],
    )
}

fn token(claims: Value, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET)).unwrap_or_default()
}

#[test]
fn valid_token_forwards_claims() {
    let p = policy(ClaimRules::default());
    let t = token(json!({"sub": "alice", "exp": now() + 60}), Some("k1"));
    let v = p.verify(&t, "/x", now()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.headers[0].1, "alice");
    assert_eq!(v.facts.subject.as_deref(), Some("alice"));
    assert_eq!(v.facts.id, None);
    let no_kid = token(json!({"sub": "alice", "exp": now() + 60}), None);
    assert!(p.verify(&no_kid, "/x", now()).is_ok());
}

#[test]
fn time_checks_use_the_leeway() {
    let p = policy(ClaimRules { leeway: 30, ..ClaimRules::default() });
    let inside = token(json!({"exp": now() - 20}), None);
    assert!(p.verify(&inside, "/x", now()).is_ok());
    let outside = token(json!({"exp": now() - 40}), None);
    assert_eq!(p.verify(&outside, "/x", now()).err(), Some(AuthError::Expired));
    let future = token(json!({"exp": now() + 600, "nbf": now() + 300}), None);
    assert_eq!(p.verify(&future, "/x", now()).err(), Some(AuthError::NotYetValid));
    let no_exp = token(json!({"sub": "a"}), None);
    assert_eq!(p.verify(&no_exp, "/x", now()).err(), Some(AuthError::BadSignature));
    let never = token(json!({"exp": "never"}), None);
    assert_eq!(p.verify(&never, "/x", now()).err(), Some(AuthError::BadSignature));
}

#[test]
fn claim_rules() {
    let p = policy(ClaimRules {
        issuers: vec!["https://idp".into()],
        audiences: vec!["media".into()],
        required: vec![("division".into(), json!("Honda"))],
        path_claim: Some("path".into()),
        max_lifetime: Some(3600),
        ..ClaimRules::default()
    });
    let base = json!({"iss": "https://idp", "aud": ["x", "media"], "division": "Honda",
                      "path": ["/m/u1/*", "/m/file"], "exp": now() + 60, "iat": now()});
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        token(c, None)
    };
    assert!(p.verify(&token(base.clone(), None), "/m/u1/a/b", now()).is_ok());
    assert!(p.verify(&token(base.clone(), None), "/m/file", now()).is_ok());
    assert_eq!(p.verify(&token(base.clone(), None), "/m/u10/a", now()).err(), Some(AuthError::WrongResource));
    assert_eq!(p.verify(&with("iss", json!("https://evil")), "/m/file", now()).err(), Some(AuthError::ClaimMismatch));
    assert_eq!(p.verify(&with("aud", json!("other")), "/m/file", now()).err(), Some(AuthError::ClaimMismatch));
    assert_eq!(p.verify(&with("division", json!("Toyota")), "/m/file", now()).err(), Some(AuthError::ClaimMismatch));
    assert_eq!(p.verify(&with("path", json!(7)), "/m/file", now()).err(), Some(AuthError::ClaimMismatch));
    assert_eq!(p.verify(&with("iat", json!(now() - 7200)), "/m/file", now()).err(), Some(AuthError::ClaimMismatch));
    let mut missing_aud = base.clone();
    missing_aud.as_object_mut().map(|o| o.remove("aud"));
    assert_eq!(p.verify(&token(missing_aud, None), "/m/file", now()).err(), Some(AuthError::ClaimMismatch));
}

#[test]
fn facts_for_the_stateful_stage() {
    let p = policy(ClaimRules::default());
    let (iat, exp) = (now() - 5, now() + 60);
    let t = token(json!({"jti": "j-1", "sub": "bob", "iat": iat, "exp": exp}), None);
    let v = p.verify(&t, "/x", now()).unwrap_or_else(|e| panic!("{e}"));
    let want = Facts {
        id: Some("j-1".into()),
        subject: Some("bob".into()),
        issued_at: Some(iat),
        expires_at: Some(exp),
        fingerprint: None,
    };
    assert_eq!(v.facts, want);
    let numeric = token(json!({"jti": 7, "sub": 8, "exp": exp}), None);
    let v = p.verify(&numeric, "/x", now()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((v.facts.id, v.facts.subject), (None, None), "only strings are ids and subjects");
}

#[test]
fn aud_is_ignored_when_not_configured() {
    let p = policy(ClaimRules::default());
    let t = token(json!({"aud": "someone", "exp": now() + 60}), None);
    assert!(p.verify(&t, "/x", now()).is_ok());
}

#[test]
fn key_selection() {
    let p = policy(ClaimRules::default());
    let t = token(json!({"exp": now() + 60}), Some("other"));
    assert_eq!(p.verify(&t, "/x", now()).err(), Some(AuthError::UnknownKey));
    let forged = {
        let header = Header::new(Algorithm::HS256);
        let claims = json!({"exp": now() + 60});
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(b"another-secret-another-secret-xx"))
            .unwrap_or_default()
    };
    assert_eq!(p.verify(&forged, "/x", now()).err(), Some(AuthError::BadSignature));
    let hs384 = {
        let header = Header::new(Algorithm::HS384);
        jsonwebtoken::encode(&header, &json!({"exp": now() + 60}), &EncodingKey::from_secret(SECRET))
            .unwrap_or_default()
    };
    assert_eq!(p.verify(&hs384, "/x", now()).err(), Some(AuthError::BadSignature), "key pinned to HS256");
}

/// An HS256 token over a payload written as raw JSON text, so claim
/// values no JSON library would produce (u64::MAX + 1) can be tested.
fn raw_token(payload: &str) -> String {
    let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let input = format!("{head}.{}", URL_SAFE_NO_PAD.encode(payload));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, SECRET);
    let sig = URL_SAFE_NO_PAD.encode(aws_lc_rs::hmac::sign(&key, input.as_bytes()));
    format!("{input}.{sig}")
}

/// Correctly signed tokens whose registered claims are not NumericDates
/// are invalid tokens (401 `invalid_token` from a header), never a scope
/// mismatch; no value panics.
#[test]
fn malformed_registered_claims_are_invalid_tokens() {
    let p = policy(ClaimRules { max_lifetime: Some(3600), ..ClaimRules::default() });
    let later = now() + 60;
    for exp in ["-1", "\"2000000000\"", "null", "1.5e9", "1e300", "18446744073709551616", "true", "[1]", "{}"] {
        let t = raw_token(&format!(r#"{{"exp":{exp}}}"#));
        assert_eq!(p.verify(&t, "/x", now()).err(), Some(AuthError::BadSignature), "exp {exp}");
    }
    for claim in ["nbf", "iat"] {
        for bad in ["-1", "\"1\"", "null", "1.5", "{}"] {
            let t = raw_token(&format!(r#"{{"exp":{later},"{claim}":{bad}}}"#));
            assert_eq!(p.verify(&t, "/x", now()).err(), Some(AuthError::BadSignature), "{claim} {bad}");
        }
    }
    for payload in ["[]", "7", "\"x\"", "null"] {
        assert_eq!(p.verify(&raw_token(payload), "/x", now()).err(), Some(AuthError::BadSignature), "{payload}");
    }
    // The largest integral exp parses, and max_lifetime still bounds it.
    let far = raw_token(&format!(r#"{{"exp":{}}}"#, u64::MAX));
    assert_eq!(p.verify(&far, "/x", now()).err(), Some(AuthError::ClaimMismatch));
    let unbounded = policy(ClaimRules::default());
    assert!(unbounded.verify(&far, "/x", now()).is_ok());
    assert!(p.verify(&raw_token(&format!(r#"{{"exp":{later}}}"#)), "/x", now()).is_ok());
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

#[test]
fn bearer_parsing() {
    assert_eq!(bearer(&headers(&[("authorization", "Bearer abc")])), Ok(Some("abc")));
    assert_eq!(bearer(&headers(&[("authorization", "bearer  abc ")])), Ok(Some("abc")));
    assert_eq!(bearer(&headers(&[("authorization", "Basic abc")])), Ok(None));
    assert_eq!(bearer(&headers(&[])), Ok(None));
    assert_eq!(
        bearer(&headers(&[("authorization", "Bearer a"), ("authorization", "Bearer b")])),
        Err(AuthError::Malformed)
    );
}

#[test]
fn shapes_are_checked_before_parsing() {
    assert!(well_formed("a.b.c"));
    for bad in ["", "a.b", "a.b.c.d", "a.b.c.d.e", "a..c", "a.b.c=", "a.b .c", ".b.c", "a.b."] {
        assert!(!well_formed(bad), "{bad:?}");
    }
    assert!(!well_formed(&"a".repeat(MAX_TOKEN_LEN + 1)));
}

#[test]
fn path_patterns() {
    assert!(path_matches("/a/b", "/a/b"));
    assert!(!path_matches("/a/b", "/a/b/c"));
    assert!(path_matches("/a/*", "/a/b/c"));
    assert!(!path_matches("/a/*", "/ab"));
    assert!(!path_matches("/a*", "/ab"), "a prefix must end with /*");
}
