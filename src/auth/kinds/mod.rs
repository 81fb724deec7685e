//! The credential kinds, one module each, behind [`super::Kind`]:
//! native signed URLs (SPEC §2), path tokens (§2b) and JWTs from a header,
//! the query or a cookie (§3).

pub mod jwt;
pub mod path_token;
pub mod signed_url;
