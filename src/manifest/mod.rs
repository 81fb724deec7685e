//! Video manifests (HLS playlists, DASH MPDs): every URI in one, found in
//! one pass over its lines or tags and offered to a [`Rewrite`], the rest
//! of the bytes copied as they are. A leaf: it knows manifest syntax, not
//! credentials; `proxy::manifests` decides what each URI becomes.

mod dash;
mod hls;
mod uri;

pub use uri::{Rewrite, Use};

use std::time::Duration;

/// A manifest format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Hls,
    Dash,
}

impl Format {
    /// The format of an answer, from its `Content-Type` or, when that is
    /// generic or absent, the request path's extension.
    pub fn detect(content_type: Option<&str>, path: &str) -> Option<Format> {
        let media = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
        match media.as_deref() {
            Some("application/vnd.apple.mpegurl" | "application/x-mpegurl" | "audio/mpegurl" | "audio/x-mpegurl") => {
                return Some(Format::Hls);
            }
            Some("application/dash+xml") => return Some(Format::Dash),
            Some("" | "application/octet-stream" | "text/plain" | "binary/octet-stream") | None => {}
            Some(_) => return None,
        }
        Format::by_extension(path)
    }

    /// The format a request path names by its extension.
    pub fn by_extension(path: &str) -> Option<Format> {
        let name = path.rsplit('/').next().unwrap_or("");
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("m3u8" | "m3u") => Some(Format::Hls),
            Some("mpd") => Some(Format::Dash),
            _ => None,
        }
    }
}

/// Rewrites every URI of `input` through `r`; the other bytes (comments,
/// attributes, unknown tags, line endings) are copied unchanged.
pub fn rewrite(format: Format, input: &[u8], r: &mut dyn Rewrite) -> Vec<u8> {
    match format {
        Format::Hls => hls::rewrite(input, r),
        Format::Dash => dash::rewrite(input, r),
    }
}

/// A route's `manifests:` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestSettings {
    /// Largest manifest rewritten; a larger one is a 502.
    pub max_size: u64,
    /// Lifetime of the links minted for key URIs (never past the
    /// request's own credential).
    pub key_link_ttl: Duration,
    /// The routes key links may be minted for, by name; none by default.
    pub key_routes: Vec<String>,
}

impl Default for ManifestSettings {
    fn default() -> Self {
        ManifestSettings { max_size: 8 << 20, key_link_ttl: Duration::from_secs(60), key_routes: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_content_type_then_the_extension() {
        assert_eq!(Format::detect(Some("application/vnd.apple.mpegurl"), "/x"), Some(Format::Hls));
        assert_eq!(Format::detect(Some("Application/X-MpegURL; charset=utf-8"), "/x"), Some(Format::Hls));
        assert_eq!(Format::detect(Some("application/dash+xml"), "/x"), Some(Format::Dash));
        assert_eq!(Format::detect(Some("application/octet-stream"), "/v/index.M3U8"), Some(Format::Hls));
        assert_eq!(Format::detect(None, "/v/stream.mpd"), Some(Format::Dash));
        assert_eq!(Format::detect(Some("video/mp2t"), "/v/index.m3u8"), None, "a typed answer is what it says");
        assert_eq!(Format::detect(None, "/v/seg.ts"), None);
        assert_eq!(Format::detect(None, "/v.m3u8/seg"), None);
    }
}

#[cfg(test)]
mod adversarial_tests;
