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

#[derive(clap::Args)]
struct KeyArgs {
    /// Environment variable holding the HMAC secret.
    #[arg(long)]
    key_env: Option<String>,
    /// File holding the HMAC secret.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// How the secret is written.
    #[arg(long, value_enum, default_value = "raw")]
    key_encoding: Encoding,
}

#[derive(Clone, Copy, ValueEnum)]
enum Encoding {
    Raw,
    Base64,
    Hex,
}

impl KeyArgs {
    fn secret(&self) -> Result<Vec<u8>, String> {
        let encoding = match self.key_encoding {
            Encoding::Raw => SecretEncoding::Raw,
            Encoding::Base64 => SecretEncoding::Base64,
            Encoding::Hex => SecretEncoding::Hex,
        };
        let env = match (&self.key_env, &self.key_file) {
            (None, None) => Some("TOLLGATE_KEY"),
            (env, _) => env.as_deref(),
        };
        tools::read_secret(env, self.key_file.as_deref(), encoding)
    }
}

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
        Command::Sign { target, key, ttl, exp, kid, prefix, method, path_token, marker, jti } => {
            let secret = key.secret()?;
            let target = match jti {
                Some(id) => tools::with_id(&target, &id)?,
                None => target,
            };
            let exp = match exp {
                Some(e) => e,
                None => tollgate::auth::unix_now() + config::duration::parse_duration(&ttl)?.as_secs(),
            };
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
