//! The credential kinds, one module each, behind [`super::Kind`]:
//! native signed URLs (SPEC §2), path tokens (§2b), JWTs from a header,
//! the query or a cookie (§3), cookies exchanged for a URL credential
//! (§10); and, for links minted for a CDN or for nginx, CloudFront signed
//! URLs and cookies, Akamai EdgeAuth tokens, Cloud CDN signed URLs and
//! cookies, and nginx `secure_link` hashes (`cdn.rs` holds what those four
//! share).

pub mod cdn;
pub mod cloud_cdn;
pub mod cloudfront;
pub mod edgeauth;
pub mod exchanged_cookie;
pub mod jwt;
pub mod path_token;
pub mod secure_link;
pub mod signed_url;
