//! What the format parsers offer: a URI, what it is used for, and the
//! decision of what it becomes.

/// What a URI in a manifest is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A playlist, segment, init section or part.
    Content,
    /// A DASH `BaseURL`: what the relative URIs after it resolve against.
    Base,
    /// The key of encrypted segments (`EXT-X-KEY`, `EXT-X-SESSION-KEY`).
    Key,
}

/// Decides what each URI becomes; `None` keeps it byte for byte.
pub trait Rewrite {
    fn uri(&mut self, uri: &str, used: Use) -> Option<String>;
}
