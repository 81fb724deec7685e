//! The memory store's revocations file: how `tollgate revoke` reaches a
//! running single-replica tollgate without a write endpoint on the network.
//!
//! One revocation per line, digests only (no id or subject in clear):
//!
//! ```text
//! id <sha256 hex> <until>
//! subject <sha256 hex> <before> <until>
//! ```
//! `until` and `before` are unix seconds. Lines past their `until` are
//! dropped whenever the file is written, so it stays small. The file is
//! replaced atomically (write, then rename), so the server never reads half
//! of it; it polls the file and swaps the whole set in.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use super::model::{Digest, Revocation};

/// The revocations a memory store holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Revocations {
    /// id → until.
    ids: HashMap<Digest, u64>,
    /// subject → (before, until).
    subjects: HashMap<Digest, (u64, u64)>,
}

impl Revocations {
    /// Reads a file; a missing file holds no revocations.
    pub fn read(path: &Path) -> Result<Revocations, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => Revocations::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Revocations::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Revocations, String> {
        let mut out = Revocations::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let bad = || format!("line {}: expected `id <hex> <until>` or `subject <hex> <before> <until>`", n + 1);
            let digest = fields.get(1).and_then(|h| Digest::from_hex(h)).ok_or_else(bad)?;
            let number = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).ok_or_else(bad);
            match (fields[0], fields.len()) {
                ("id", 3) => out.add(&Revocation::Id { id: digest, until: number(2)? }),
                ("subject", 4) => {
                    out.add(&Revocation::Subject { subject: digest, before: number(2)?, until: number(3)? })
                }
                _ => return Err(bad()),
            }
        }
        Ok(out)
    }

    /// Adds one revocation, keeping the later instants of a repeated one.
    pub fn add(&mut self, r: &Revocation) {
        match *r {
            Revocation::Id { id, until } => {
                let e = self.ids.entry(id).or_insert(until);
                *e = (*e).max(until);
            }
            Revocation::Subject { subject, before, until } => {
                let e = self.subjects.entry(subject).or_insert((before, until));
                *e = (e.0.max(before), e.1.max(until));
            }
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.ids.len() + self.subjects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn id_revoked(&self, id: Digest, now: u64) -> bool {
        self.ids.get(&id).is_some_and(|&until| until >= now)
    }

    pub fn subject_revoked_before(&self, subject: Digest, now: u64) -> Option<u64> {
        self.subjects.get(&subject).filter(|(_, until)| *until >= now).map(|(before, _)| *before)
    }

    /// The file's text, without entries that ended before `now`.
    pub fn render(&self, now: u64) -> String {
        let mut lines: Vec<String> = Vec::new();
        for (id, until) in &self.ids {
            if *until >= now {
                lines.push(format!("id {} {until}", id.hex()));
            }
        }
        for (subject, (before, until)) in &self.subjects {
            if *until >= now {
                lines.push(format!("subject {} {before} {until}", subject.hex()));
            }
        }
        lines.sort();
        let mut text = String::from("# tollgate revocations, written by `tollgate revoke` (digests, unix seconds)\n");
        for l in lines {
            text.push_str(&l);
            text.push('\n');
        }
        text
    }

    /// Adds `r` to the file at `path` (created if missing), dropping ended
    /// entries, and replaces the file atomically.
    pub fn append_to(path: &Path, r: &Revocation, now: u64) -> Result<(), String> {
        let mut all = Revocations::read(path)?;
        all.add(r);
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("revocations");
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(all.render(now).as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot write {}: {e}", path.display())
        })
    }
}

/// How often the running server looks at the revocations file.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Calls `changed` whenever the file's size or modification time changes
/// (a rename by `tollgate revoke` changes both the inode and the time).
pub async fn watch(path: std::path::PathBuf, changed: impl Fn() + Send + 'static) {
    let stamp = |p: &Path| {
        std::fs::metadata(p).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.len(), m.modified().ok(), m.ino())
        })
    };
    let mut last = stamp(&path);
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = stamp(&path);
        if now != last {
            last = now;
            changed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trip_keeps_the_later_instants_and_drops_ended_ones() {
        let (a, s) = (Digest::id("a"), Digest::subject("alice"));
        let mut r = Revocations::default();
        r.add(&Revocation::Id { id: a, until: 100 });
        r.add(&Revocation::Id { id: a, until: 50 });
        r.add(&Revocation::Subject { subject: s, before: 10, until: 200 });
        r.add(&Revocation::Subject { subject: s, before: 20, until: 150 });
        r.add(&Revocation::Id { id: Digest::id("old"), until: 5 });
        let text = r.render(60);
        assert!(!text.contains(&Digest::id("old").hex()), "{text}");
        let back = Revocations::parse(&text).unwrap_or_default();
        assert!(back.id_revoked(a, 100));
        assert!(!back.id_revoked(a, 101));
        assert_eq!(back.subject_revoked_before(s, 200), Some(20));
        assert_eq!(back.subject_revoked_before(s, 201), None);
        assert!(!text.contains("alice"), "digests only");
    }

    #[test]
    fn bad_lines_are_errors() {
        for bad in ["id zz 1", "id 00 1", "subject x", "other 1 2"] {
            assert!(Revocations::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Revocations::parse("# only a comment\n\n").map(|r| r.len()), Ok(0));
    }
}
