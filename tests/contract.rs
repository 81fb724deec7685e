//! The repository's copies of the shared vectors are the contract's, byte
//! for byte.
#![allow(clippy::unwrap_used)]

#[test]
fn vector_copies_match_the_shared_contract() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/vectors");
    let Ok(entries) = std::fs::read_dir(&shared) else {
        // Outside the project's workspace (a plain clone) only our copies
        // exist; the unit tests in src/auth run them.
        eprintln!("{}: not found; only the repository's copies are checked", shared.display());
        return;
    };
    let mut compared = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path.file_name().unwrap();
            let ours = std::fs::read(root.join("tests/vectors").join(name));
            assert_eq!(
                ours.ok(),
                Some(std::fs::read(&path).unwrap()),
                "tests/vectors/{name:?} differs from {}",
                path.display()
            );
            compared += 1;
        }
    }
    assert!(compared >= 3, "expected the shared vector files, found {compared}");
}
