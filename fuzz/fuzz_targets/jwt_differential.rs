//! tollgate's JWT verifier against `jsonwebtoken::decode`: for any token the
//! fuzzer writes, both give the same accept/refuse verdict, except for the
//! deliberate differences named in `tests/jwt_oracle` (where tollgate must
//! be the one refusing, or the library refuses for a parser artefact).
//!
//! Input: four selector bytes (key family, the route's algorithm list,
//! leeway, mode), then text. Mode even: the text is `HEADER\nPAYLOAD`, the
//! JSON of both segments, signed by the route's key (or, by the mode's other
//! bits, a wrong key or the public key used as an HMAC secret); `NOW` in the
//! payload is replaced by the current time, so the claim checks are reached.
//! Mode odd: the text is the whole token.
#![no_main]

#[path = "../../tests/jwt_oracle/mod.rs"]
mod jwt_oracle;

use std::sync::OnceLock;

use jwt_oracle::{Fixture, Signer};
use libfuzzer_sys::fuzz_target;

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(Fixture::generate)
}

fuzz_target!(|data: &[u8]| {
    let [family, algs, leeway, mode, rest @ ..] = data else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let fx = fixture();
    let family = usize::from(*family) % fx.families.len();
    let keys = &fx.families[family];
    let algs = &keys.alg_lists[usize::from(*algs) % keys.alg_lists.len()];
    let leeway = [0, 1, 60, 300][usize::from(*leeway) % 4];
    let token = if mode & 1 == 1 {
        text.to_owned()
    } else {
        let (header, payload) = text.split_once('\n').unwrap_or((text, ""));
        let payload = payload.replace("NOW", &jsonwebtoken::get_current_timestamp().to_string());
        let signer = match (mode >> 1) % 8 {
            0 => Signer::Wrong,
            1 => Signer::PublicAsSecret,
            _ => Signer::Correct,
        };
        let sign_alg = keys.sign_algs[usize::from(mode >> 4) % keys.sign_algs.len()];
        fx.token(family, header.as_bytes(), payload.as_bytes(), sign_alg, &signer)
    };
    if let Err(discrepancy) = fx.check(family, algs, leeway, &token) {
        panic!("{discrepancy}");
    }
});
