//! The JSON Schema of the config file (`tollgate schema`), generated from the
//! raw serde structs of `file.rs` so it cannot drift from what the parser
//! accepts. Editors use it for completion and checking (the
//! `yaml-language-server` modeline in `config/*.yaml`); a test keeps the
//! committed `config/tollgate.schema.json` equal to this output.
//!
//! The structs derive `JsonSchema`. The few types with a hand-written
//! `Deserialize` (durations, sizes, `auth: none`) or that live outside the
//! config module get their schemas here, written to accept exactly what
//! their parsers accept.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use super::file::{
    AuthFile, AuthRulesFile, ByteQuotaFile, ConfigFile, CookieExchangeFile, RevocationFile, SecretEncoding,
    ShareLimitFile, StreamLimitFile, UseLimitFile,
};
use crate::auth::kinds::REGISTRY;

/// The schema as `tollgate schema` prints it (pretty JSON, final newline).
pub fn config_schema_json() -> String {
    let mut text = serde_json::to_string_pretty(&config_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// The JSON Schema (draft-07, the newest that every YAML editor plugin
/// reads) of a tollgate config file.
pub fn config_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema = generator.into_root_schema_for::<ConfigFile>().to_value();
    if let Some(root) = schema.as_object_mut() {
        root.insert("title".into(), "tollgate configuration".into());
        root.insert(
            "description".into(),
            "A tollgate config file (config/tollgate.yaml documents every option). Unknown fields are errors; \
             secrets come from *_env variables or *_file files, never inline."
                .into(),
        );
    }
    // The three top-level collections are kept as raw YAML by `file.rs`
    // (so one bad entry does not hide the next one's errors); say here what
    // their entries are.
    for (field, text) in [
        ("keys", "Keys by name; a key's name is its `kid` unless `kid` says otherwise. Exactly one source each."),
        ("upstreams", "Upstreams by name: a file server (`url`) or an object store (`url` and `s3`)."),
        ("routes", "Routes; a request takes the one with the longest matching `prefix` (and `host`, if set)."),
    ] {
        if let Some(property) = schema.pointer_mut(&format!("/properties/{field}")).and_then(|p| p.as_object_mut()) {
            property.insert("description".into(), text.into());
        }
    }
    schema
}

/// Every encoding with its YAML spelling. The match is exhaustive, so a new
/// encoding does not compile until it is named here (and in the schema).
fn encoding_name(encoding: SecretEncoding) -> &'static str {
    match encoding {
        SecretEncoding::Raw => "raw",
        SecretEncoding::Base64 => "base64",
        SecretEncoding::Hex => "hex",
    }
}

const ENCODINGS: [SecretEncoding; 3] = [SecretEncoding::Raw, SecretEncoding::Base64, SecretEncoding::Hex];

impl JsonSchema for SecretEncoding {
    fn schema_name() -> Cow<'static, str> {
        "SecretEncoding".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = ENCODINGS.into_iter().map(encoding_name).collect();
        json_schema!({
            "description": "How the stored text encodes the secret bytes (default raw).",
            "type": "string",
            "enum": names,
        })
    }
}

impl JsonSchema for AuthFile {
    fn schema_name() -> Cow<'static, str> {
        "Auth".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let rules = generator.subschema_for::<AuthRulesFile>();
        json_schema!({
            "description": "`none` (the route is public, said explicitly), or the credentials it accepts.",
            "anyOf": [{ "type": "string", "enum": ["none"] }, rules],
        })
    }
}

impl JsonSchema for AuthRulesFile {
    fn schema_name() -> Cow<'static, str> {
        "AuthRulesFile".into()
    }

    /// The route's own fields, then each registered kind's section.
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut properties = serde_json::Map::new();
        let mut field = |name: &str, mut schema: Schema, about: &str| {
            if let Some(object) = schema.as_object_mut()
                && !object.contains_key("description")
                && !about.is_empty()
            {
                object.insert("description".into(), about.into());
            }
            properties.insert(name.into(), schema.to_value());
        };
        field(
            "use_limit",
            generator.subschema_for::<Option<UseLimitFile>>(),
            "Limit how often one credential may be used (README: One-time and limited links); the id is the JWT `jti` or the signed URL's `jti` parameter.",
        );
        field(
            "revocation",
            generator.subschema_for::<Option<RevocationFile>>(),
            "Refuse credentials revoked with `tollgate revoke` (README: One-time and limited links).",
        );
        field(
            "share_limit",
            generator.subschema_for::<Option<ShareLimitFile>>(),
            "Refuse a credential used from more client networks than this (README: Leaked links).",
        );
        field(
            "stream_limit",
            generator.subschema_for::<Option<StreamLimitFile>>(),
            "At most this many downloads of one credential in flight at once, across replicas (README: Leaked links).",
        );
        field(
            "byte_quota",
            generator.subschema_for::<Option<ByteQuotaFile>>(),
            "Bytes one credential may download in its lifetime, across replicas (README: Leaked links).",
        );
        field(
            "report_only",
            generator.subschema_for::<Option<bool>>(),
            "Serve requests whose credential verification would refuse (missing, invalid, expired, for another path), counting them as denials and logging them: for rolling a route's protection out (default false). A request carrying a path token is never served this way.",
        );
        field(
            "cookie_exchange",
            generator.subschema_for::<Option<CookieExchangeFile>>(),
            "Exchange a URL credential for a cookie on top-level navigations.",
        );
        for kind in REGISTRY {
            field(kind.section(), kind.schema(generator), "");
        }
        json_schema!({
            "description": "The credentials a route accepts: one or more credential kinds' sections, and the route's use limit, revocation and cookie exchange.",
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_in_the_schema_are_the_ones_the_parser_reads() {
        for encoding in ENCODINGS {
            let parsed: SecretEncoding =
                serde_yaml_ng::from_str(encoding_name(encoding)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(parsed, encoding);
        }
        let schema = config_schema();
        let listed = &schema["definitions"]["SecretEncoding"]["enum"];
        assert_eq!(listed, &serde_json::json!(["raw", "base64", "hex"]));
    }

    #[test]
    fn top_level_collections_describe_their_entries() {
        let schema = config_schema();
        assert_eq!(schema["properties"]["keys"]["additionalProperties"]["$ref"], "#/definitions/KeyFile");
        assert_eq!(schema["properties"]["upstreams"]["additionalProperties"]["$ref"], "#/definitions/UpstreamFile");
        assert_eq!(schema["properties"]["routes"]["items"]["$ref"], "#/definitions/RouteFile");
        assert_eq!(schema["additionalProperties"], false, "unknown fields are errors");
    }
}
