//! The `tollgate` command: argument parsing and exit codes only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use jsonwebtoken::Algorithm;
use tollgate::config::file::SecretEncoding;
use tollgate::config::{self, DEFAULT_PATH};
use tollgate::metrics::Metrics;
use tollgate::tools::{self, SignRequest, TokenKey};

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "A gatekeeper for private files: signed URLs and JWTs in front of nginx or S3"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve {
        #[arg(long, env = "TOLLGATE_CONFIG", default_value = DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Validate a configuration; print every error with its YAML path.
    Check {
        #[arg(long, env = "TOLLGATE_CONFIG", default_value = DEFAULT_PATH)]
        config: PathBuf,
    },
    /// Print the JSON Schema of the config file (for editors and validators).
    Schema,
    /// Explain why a URL would be allowed or refused, check by check
    /// (exit 0 when allowed, 1 when refused). Never prints key material.
    Explain {
        #[arg(long, env = "TOLLGATE_CONFIG", default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// `/path?query` or `https://host/path?query`.
        url: String,
        /// The request's method.
        #[arg(long, short = 'X', default_value = "GET")]
        method: String,
        /// A request header, `Name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// The client's address, for IP-bound credentials (default 127.0.0.1).
        #[arg(long)]
        client_ip: Option<std::net::IpAddr>,
    },
    /// Print a signed URL for a path or URL.
    Sign {
        /// `/path?query` or `https://host/path?query`.
        target: String,
        #[command(flatten)]
        key: KeyArgs,
        /// Lifetime of the link, e.g. 15m, 1h, 1d.
        #[arg(long, default_value = "15m", conflicts_with = "exp")]
        ttl: String,
        /// Absolute expiry (unix seconds) instead of --ttl.
        #[arg(long)]
        exp: Option<u64>,
        /// Key id to put in the URL (selects the key on routes with several).
        #[arg(long)]
        kid: Option<String>,
        /// Grant every path under this prefix (must end with /).
        #[arg(long)]
        prefix: Option<String>,
        /// Method the link is for (HEAD is covered by GET).
        #[arg(long, default_value = "GET")]
        method: String,
        /// Write a path token (SPEC §2b) after the prefix instead of query
        /// parameters: for HLS/DASH, whose players drop the query. Grants
        /// --prefix, or the target's directory.
        #[arg(long)]
        path_token: bool,
        /// The route's path-token marker.
        #[arg(long, default_value = "tg", requires = "path_token")]
        marker: String,
        /// The link format: tollgate's own, or a CDN's (for tests and
        /// migration scripts). `cloudfront` signs with --private-key and
        /// --kid (the Key-Pair-Id), SHA-256; `secure_link` with --md5.
        #[arg(long, value_enum, default_value = "tollgate")]
        format: Format,
        #[command(flatten)]
        cdn: Box<CdnArgs>,
        /// The link's id (`jti` parameter, signed): what use limits count
        /// and `tollgate revoke --jti` names.
        #[arg(long, conflicts_with = "path_token")]
        jti: Option<String>,
    },
    /// Mint a JWT for testing.
    Token {
        #[command(flatten)]
        key: KeyArgs,
        /// Private key PEM for RS*/PS*/ES*/EdDSA.
        #[arg(long, conflicts_with_all = ["key_env", "key_file"])]
        private_key: Option<PathBuf>,
        #[arg(long, default_value = "HS256")]
        alg: String,
        #[arg(long, default_value = "15m")]
        ttl: String,
        #[arg(long)]
        kid: Option<String>,
        #[arg(long)]
        sub: Option<String>,
        #[arg(long)]
        iss: Option<String>,
        #[arg(long)]
        aud: Option<String>,
        /// Path pattern granted (repeatable), put in the `path` claim.
        #[arg(long = "path")]
        paths: Vec<String>,
        /// Extra claim `name=value` (value parsed as JSON when it is JSON).
        #[arg(long = "claim")]
        claims: Vec<String>,
        /// The token's id (`jti` claim, a string).
        #[arg(long)]
        jti: Option<String>,
    },
    /// Revoke a credential by id, or everything a subject was issued before
    /// a moment, in the configured store (SPEC §11).
    Revoke {
        #[arg(long, env = "TOLLGATE_CONFIG", default_value = DEFAULT_PATH)]
        config: PathBuf,
        /// The credential's id (JWT `jti` claim or signed URL `jti` parameter).
        #[arg(long, required_unless_present = "sub", conflicts_with = "sub")]
        jti: Option<String>,
        /// The subject (JWT `sub`) whose credentials to revoke.
        #[arg(long)]
        sub: Option<String>,
        /// With --sub: revoke what was issued (`iat`) before this instant,
        /// unix seconds (default: everything issued up to now).
        #[arg(long, requires = "sub")]
        before: Option<u64>,
        /// Keep the revocation this long (default: the longest credential
        /// lifetime a route that checks revocations accepts, e.g. 1d).
        #[arg(long)]
        keep: Option<String>,
    },
    /// Run a self-contained demo and print URLs to try.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: SocketAddr,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Tollgate,
    #[value(name = "cloudfront")]
    CloudFront,
    #[value(name = "secure_link")]
    SecureLink,
    #[value(name = "edgeauth")]
    EdgeAuth,
    #[value(name = "cloud_cdn")]
    CloudCdn,
}

/// Options of the CDN formats of `tollgate sign`.
#[derive(clap::Args)]
struct CdnArgs {
    /// cloudfront: the private key PEM (RSA or ECDSA P-256).
    #[arg(long = "private-key")]
    sign_private_key: Option<PathBuf>,
    /// cloudfront: a Resource pattern (with * and ?) instead of the URL.
    #[arg(long)]
    policy_resource: Option<String>,
    /// cloudfront: bind the link to this client address or CIDR range.
    #[arg(long)]
    ip: Option<String>,
    /// cloudfront: not valid before this time (unix seconds).
    #[arg(long)]
    not_before: Option<u64>,
    /// cloudfront, cloud_cdn: print the signed cookies (a Cookie header value).
    #[arg(long)]
    cookies: bool,
    /// cloud_cdn: sign this URL prefix (the URLPrefix form, and cookies).
    #[arg(long)]
    url_prefix: Option<String>,
    /// secure_link: nginx's secure_link_md5 expression, $secret for the key.
    #[arg(long)]
    md5: Option<String>,
    /// secure_link: the client address for $remote_addr.
    #[arg(long)]
    remote_addr: Option<std::net::IpAddr>,
    /// secure_link: the hash parameter's name.
    #[arg(long, default_value = "md5")]
    hash_param: String,
    /// secure_link: the expiry parameter's name.
    #[arg(long, default_value = "expires")]
    expires_param: String,
    /// edgeauth: ACL mode with these `!`-separated path patterns (default:
    /// URL mode, the target's path hashed in).
    #[arg(long)]
    acl: Option<String>,
    /// edgeauth: sha256, sha1 or md5.
    #[arg(long, default_value = "sha256")]
    algorithm: String,
    /// edgeauth: a file holding the salt.
    #[arg(long)]
    salt_file: Option<PathBuf>,
    /// edgeauth: the token's query parameter.
    #[arg(long, default_value = "__token__")]
    token_name: String,
}

#[derive(clap::Args)]
struct KeyArgs {
    /// Environment variable holding the HMAC secret.
    #[arg(long)]
    key_env: Option<String>,
    /// File holding the HMAC secret.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// How the secret is written (default raw; for --format edgeauth hex,
    /// for cloud_cdn base64).
    #[arg(long, value_enum)]
    key_encoding: Option<Encoding>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Encoding {
    Raw,
    Base64,
    Hex,
}

impl KeyArgs {
    fn source(&self, default: Encoding) -> (Option<&str>, SecretEncoding) {
        let encoding = match self.key_encoding.unwrap_or(default) {
            Encoding::Raw => SecretEncoding::Raw,
            Encoding::Base64 => SecretEncoding::Base64,
            Encoding::Hex => SecretEncoding::Hex,
        };
        let env = match (&self.key_env, &self.key_file) {
            (None, None) => Some("TOLLGATE_KEY"),
            (env, _) => env.as_deref(),
        };
        (env, encoding)
    }

    fn secret(&self) -> Result<Vec<u8>, String> {
        let (env, encoding) = self.source(Encoding::Raw);
        tools::read_secret(env, self.key_file.as_deref(), encoding)
    }

    /// A CDN format's key: any length, in the format's usual encoding.
    fn cdn_secret(&self, default: Encoding) -> Result<Vec<u8>, String> {
        let (env, encoding) = self.source(default);
        tools::read_secret_any(env, self.key_file.as_deref(), encoding)
    }
}

/// mimalloc: per-thread free lists suit thread-per-core workers that
/// allocate and free a request's buffers on one thread (glibc's malloc
/// took about an eighth of the CPU under load; see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("tollgate: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The control-plane runtime: admin listener, signals, reloads, JWKS. The
/// proxy's worker threads run runtimes of their own (see `server`).
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Serve { config } => {
            let clean = runtime()?.block_on(tollgate::run::serve(config))?;
            Ok(if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Schema => {
            print!("{}", config::schema::config_schema_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { config, url, method, headers, client_ip } => {
            let metrics = Arc::new(Metrics::new(prometheus::Registry::new()).map_err(|e| e.to_string())?);
            let rt = runtime()?;
            let compiled = {
                let _guard = rt.enter();
                config::load(&config, &metrics).map_err(|errors| {
                    errors.0.iter().map(|e| format!("{}: {e}", config.display())).collect::<Vec<_>>().join("\n")
                })?
            };
            let method = method.to_ascii_uppercase();
            let probe = tollgate::explain::Probe { url: &url, method: &method, headers: &headers, client: client_ip };
            let found = rt.block_on(tollgate::explain::explain(&compiled, &metrics, &probe));
            print!("{}", found.report);
            Ok(if found.allowed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Check { config } => {
            let metrics = Arc::new(Metrics::new(prometheus::Registry::new()).map_err(|e| e.to_string())?);
            let _guard = runtime()?.enter();
            match config::load(&config, &metrics) {
                Ok(c) => {
                    for w in &c.warnings {
                        eprintln!("{}: warning: {w}", config.display());
                    }
                    println!("{}: ok ({} routes)", config.display(), c.routes.len());
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    for e in &errors.0 {
                        eprintln!("{}: {e}", config.display());
                    }
                    eprintln!("{} error(s)", errors.0.len());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Sign { target, key, ttl, exp, kid, prefix, method, path_token, marker, format, cdn, jti } => {
            let target = match jti {
                Some(id) => tools::with_id(&target, &id)?,
                None => target,
            };
            let exp = match exp {
                Some(e) => e,
                None => tollgate::auth::unix_now() + config::duration::parse_duration(&ttl)?.as_secs(),
            };
            if format != Format::Tollgate {
                println!("{}", sign_cdn(format, &target, &key, exp, kid.as_deref(), &cdn)?);
                return Ok(ExitCode::SUCCESS);
            }
            let secret = key.secret()?;
            let url = tools::sign(
                &secret,
                &SignRequest {
                    target: &target,
                    method: &method.to_ascii_uppercase(),
                    exp,
                    kid: kid.as_deref(),
                    prefix: prefix.as_deref(),
                    path_token: path_token.then_some(marker.as_str()),
                },
            )?;
            println!("{url}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { key, private_key, alg, ttl, kid, sub, iss, aud, paths, claims, jti } => {
            let alg: Algorithm = alg.parse().map_err(|_| format!("unknown algorithm {alg:?}"))?;
            let key = match private_key {
                Some(path) => TokenKey::PrivatePem(
                    std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                ),
                None => TokenKey::Secret(key.secret()?),
            };
            let mut body = serde_json::Map::new();
            for (name, value) in [("sub", sub), ("iss", iss), ("aud", aud), ("jti", jti)] {
                if let Some(v) = value {
                    body.insert(name.into(), v.into());
                }
            }
            if !paths.is_empty() {
                body.insert("path".into(), paths.into());
            }
            for claim in &claims {
                let (name, value) = tools::parse_claim(claim)?;
                body.insert(name, value);
            }
            let ttl = config::duration::parse_duration(&ttl)?.as_secs();
            println!("{}", tools::token(&key, alg, kid.as_deref(), ttl, body)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Revoke { config, jti, sub, before, keep } => {
            let metrics = Metrics::new(prometheus::Registry::new()).map_err(|e| e.to_string())?;
            let rt = runtime()?;
            let loaded = {
                let _guard = rt.enter();
                config::load(&config, &metrics).map_err(|e| format!("{}:\n{e}", config.display()))?
            };
            let target = match (jti, sub) {
                (Some(id), _) => tools::RevokeTarget::Id(id),
                (None, Some(sub)) => tools::RevokeTarget::Subject { sub, before },
                (None, None) => return Err("give --jti or --sub".to_owned()),
            };
            let keep = keep.map(|k| config::duration::parse_duration(&k)).transpose()?;
            let line = rt.block_on(tools::revoke(&loaded, &metrics, &target, keep))?;
            println!("{line}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { listen, admin } => {
            runtime()?.block_on(tollgate::demo::run(tollgate::demo::DemoOptions { listen, admin }))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `tollgate sign --format <cdn format>`.
fn sign_cdn(
    format: Format,
    target: &str,
    key: &KeyArgs,
    exp: u64,
    kid: Option<&str>,
    cdn: &CdnArgs,
) -> Result<String, String> {
    match format {
        Format::CloudFront => {
            let path = cdn.sign_private_key.as_ref().ok_or("cloudfront needs --private-key")?;
            let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let request = tollgate::auth::cloudfront::SignRequest {
                url: target,
                key_pair_id: kid.ok_or("cloudfront needs --kid (the Key-Pair-Id)")?,
                expires: exp,
                resource: cdn.policy_resource.as_deref(),
                ip: cdn.ip.as_deref(),
                not_before: cdn.not_before,
            };
            tools::sign_cloudfront(&tools::CloudFrontSign { private_key_pem: &pem, request, cookies: cdn.cookies })
        }
        Format::SecureLink => {
            let md5 = cdn.md5.as_deref().ok_or("secure_link needs --md5 (the secure_link_md5 expression)")?;
            let req = tools::SecureLinkSign {
                target,
                md5,
                expires: exp,
                remote_addr: cdn.remote_addr,
                hash_param: &cdn.hash_param,
                expires_param: &cdn.expires_param,
            };
            tools::sign_secure_link(&key.cdn_secret(Encoding::Raw)?, &req)
        }
        Format::EdgeAuth => {
            let algorithm = match cdn.algorithm.as_str() {
                "sha256" => tollgate::auth::edgeauth::Algorithm::Sha256,
                "sha1" => tollgate::auth::edgeauth::Algorithm::Sha1,
                "md5" => tollgate::auth::edgeauth::Algorithm::Md5,
                other => return Err(format!("unknown algorithm {other:?}: sha256, sha1 or md5")),
            };
            let salt = match &cdn.salt_file {
                Some(p) => Some(tools::read_secret_any(None, Some(p), SecretEncoding::Raw)?),
                None => None,
            };
            let req = tools::EdgeAuthSign {
                target,
                algorithm,
                salt: salt.as_deref(),
                token_name: &cdn.token_name,
                ip: cdn.ip.as_deref(),
                start: cdn.not_before,
                exp,
                acl: cdn.acl.as_deref(),
            };
            tools::sign_edgeauth(&key.cdn_secret(Encoding::Hex)?, &req)
        }
        Format::CloudCdn => {
            let req = tools::CloudCdnSign {
                url: target,
                key_name: kid.ok_or("cloud_cdn needs --kid (the KeyName)")?,
                expires: exp,
                url_prefix: cdn.url_prefix.as_deref(),
                cookie: cdn.cookies,
            };
            tools::sign_cloud_cdn(&key.cdn_secret(Encoding::Base64)?, &req)
        }
        Format::Tollgate => Err("not a CDN format".to_owned()),
    }
}
