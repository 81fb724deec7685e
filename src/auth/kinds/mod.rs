//! The credential kinds, one module each, behind [`super::Kind`]:
//! native signed URLs (SPEC §2), path tokens (§2b), JWTs from a header,
//! the query or a cookie (§3), and cookies exchanged for a URL credential
//! (§10).

pub mod exchanged_cookie;
pub mod jwt;
pub mod path_token;
pub mod signed_url;
