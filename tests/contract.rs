//! The repository's copy of the shared signed-URL vectors is the contract's.
#![allow(clippy::unwrap_used)]

#[test]
fn vector_copy_matches_the_shared_contract() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let ours = std::fs::read(root.join("tests/vectors/signed-url.json")).unwrap();
    let shared = root.join("../shared/vectors/signed-url.json");
    match std::fs::read(&shared) {
        Ok(theirs) => assert_eq!(ours, theirs, "tests/vectors/signed-url.json differs from {}", shared.display()),
        // Outside the project's workspace (a plain clone) only our copy
        // exists; the unit test in src/auth/signed_url.rs still runs it.
        Err(e) => eprintln!("{}: {e}; only the repository's copy is checked", shared.display()),
    }
}
