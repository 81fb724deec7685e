//! The `tollgate` command: argument parsing and exit codes only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use std::collections::BTreeMap;

use clap::{Parser, Subcommand, ValueEnum};
use jsonwebtoken::Algorithm;
use tollgate::auth::kinds::{REGISTRY, registered};
use tollgate::auth::sign::{KeySource, SignInput, SignKey, SignOption};
use tollgate::config::file::SecretEncoding;
use tollgate::config::{self, DEFAULT_PATH};
use tollgate::metrics::Metrics;
use tollgate::tools::{self, TokenKey};

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
        /// Check without the deployment's secrets (a clone, a CI job): an
        /// unset environment variable or a missing key file is listed as
        /// not checked instead of an error; everything else is checked.
        #[arg(long)]
        offline: bool,
    },
    /// Print the JSON Schema of the config file (for editors and validators).
    Schema,
    /// Make a new HMAC secret (32 random bytes as 64 hex characters, read
    /// as-is by the config and by `sign --key-file`): to a new file, mode
    /// 0600, or to stdout.
    Keygen {
        /// The file to create (never replaced); stdout without it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
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
        secret: KeyArgs,
        /// Lifetime of the link, e.g. 15m, 1h, 1d.
        #[arg(long, default_value = "15m", conflicts_with = "exp")]
        ttl: String,
        /// Absolute expiry (unix seconds) instead of --ttl.
        #[arg(long)]
        exp: Option<u64>,
        /// Key id to put in the link (selects the key on routes with several).
        #[arg(long)]
        kid: Option<String>,
        /// The link format: tollgate's own, or another credential kind's
        /// (for tests and migration scripts).
        #[arg(long, default_value = "tollgate", value_parser = formats())]
        format: String,
        #[command(flatten)]
        options: SignOptions,
        /// A configuration to check the link against (as `explain` does:
        /// a warning names what the proxy would refuse, e.g. a --ttl over
        /// the route's max_ttl); with --key, the key comes from it too.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The configuration's HMAC key to sign with (`keys.<name>`), read
        /// and decoded as `serve` reads it. Needs --config.
        #[arg(long, requires = "config", conflicts_with_all = ["key_env", "key_file", "key_encoding"])]
        key: Option<String>,
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
    /// a moment, in the configured store.
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

/// The `--format` values: each registered kind's signer.
fn formats() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(REGISTRY.iter().map(|k| k.signer().format()))
}

/// Every registered signer's options (`--md5`, `--path-token`, ...), each
/// once; what was given is handed to the chosen signer.
struct SignOptions(BTreeMap<&'static str, String>);

/// The options of every signer, deduplicated by name.
fn sign_options() -> Vec<SignOption> {
    let mut out: Vec<SignOption> = Vec::new();
    for option in REGISTRY.iter().flat_map(|k| k.signer().options()) {
        if !out.iter().any(|o| o.name == option.name) {
            out.push(*option);
        }
    }
    out
}

impl clap::FromArgMatches for SignOptions {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut given = BTreeMap::new();
        for option in sign_options() {
            match option.value {
                None if matches.get_flag(option.name) => {
                    given.insert(option.name, "true".to_owned());
                }
                None => {}
                Some(_) => {
                    let explicit = matches.value_source(option.name) == Some(clap::parser::ValueSource::CommandLine);
                    if let Some(value) = matches.get_one::<String>(option.name).filter(|_| explicit) {
                        given.insert(option.name, value.clone());
                    }
                }
            }
        }
        Ok(SignOptions(given))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for SignOptions {
    fn augment_args(mut cmd: clap::Command) -> clap::Command {
        for option in sign_options() {
            let mut arg = clap::Arg::new(option.name).long(option.name).help(option.help);
            arg = match option.value {
                None => arg.action(clap::ArgAction::SetTrue),
                Some(value) => arg.value_name(value),
            };
            if let Some(default) = option.default {
                arg = arg.default_value(default);
            }
            cmd = cmd.arg(arg);
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

#[derive(clap::Args)]
struct KeyArgs {
    /// Environment variable holding the HMAC secret.
    #[arg(long)]
    key_env: Option<String>,
    /// File holding the HMAC secret.
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// How the secret is written (default: the format's own: raw for
    /// tollgate's links and tokens, a CDN key format's usual encoding).
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
    /// The key as a signer reads it (`$TOLLGATE_KEY` when none is named).
    fn key(&self) -> SignKey {
        let source = match (&self.key_env, &self.key_file) {
            (_, Some(file)) if self.key_env.is_none() => KeySource::File(file.clone()),
            (Some(env), _) => KeySource::Env(env.clone()),
            _ => KeySource::Env("TOLLGATE_KEY".to_owned()),
        };
        let encoding = self.key_encoding.map(|e| match e {
            Encoding::Raw => SecretEncoding::Raw,
            Encoding::Base64 => SecretEncoding::Base64,
            Encoding::Hex => SecretEncoding::Hex,
        });
        SignKey { source, encoding }
    }
}

/// mimalloc: per-thread free lists suit thread-per-core workers that
/// allocate and free a request's buffers on one thread (glibc's malloc
/// took about an eighth of the CPU under load; see BENCHMARKS.md).
/// (`--features system-alloc` keeps the system allocator, for heap
/// profilers such as valgrind's dhat: BENCHMARKS.md, "Idle connections".)
#[cfg(not(feature = "system-alloc"))]
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

/// Each error of a configuration, prefixed with its file.
fn with_file(path: &std::path::Path, errors: &config::ConfigErrors) -> String {
    errors.0.iter().map(|e| format!("{}: {e}", path.display())).collect::<Vec<_>>().join("\n")
}

/// "1 route", "2 routes".
fn plural(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// Loads the configuration at `path` and explains `probe` against it, as
/// the proxy would answer it.
fn explain_with(
    path: &std::path::Path,
    probe: &tollgate::explain::Probe<'_>,
) -> Result<tollgate::explain::Explanation, String> {
    let metrics = Arc::new(Metrics::new(prometheus::Registry::new()).map_err(|e| e.to_string())?);
    let rt = runtime()?;
    let compiled = {
        let _guard = rt.enter();
        config::load(path, &metrics).map_err(|e| with_file(path, &e))?
    };
    Ok(rt.block_on(tollgate::explain::explain(&compiled, &metrics, probe)))
}

/// `sign --config`: explains the new link against the configuration and
/// prints the failed checks to stderr when the proxy would refuse it.
fn warn_if_refused(path: &std::path::Path, link: &str) -> Result<(), String> {
    let probe = tollgate::explain::Probe { url: link, method: "GET", headers: &[], client: None };
    let found = explain_with(path, &probe)?;
    if !found.allowed {
        eprintln!("warning: {} would refuse this link:", path.display());
        for line in found.report.lines().filter(|l| l.contains("FAIL") || l.starts_with("result")) {
            eprintln!("  {}", line.trim_start());
        }
    }
    Ok(())
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
        Command::Keygen { out: None } => {
            println!("{}", tools::keygen()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Keygen { out: Some(path) } => {
            tools::keygen_file(&path)?;
            eprintln!("wrote a new 32-byte secret to {} (mode 0600)", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { config, url, method, headers, client_ip } => {
            let method = method.to_ascii_uppercase();
            let probe = tollgate::explain::Probe { url: &url, method: &method, headers: &headers, client: client_ip };
            let found = explain_with(&config, &probe)?;
            print!("{}", found.report);
            Ok(if found.allowed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Check { config, offline } => {
            let metrics = Arc::new(Metrics::new(prometheus::Registry::new()).map_err(|e| e.to_string())?);
            let _guard = runtime()?.enter();
            match config::load_with(&config, &metrics, offline) {
                Ok(c) => {
                    for w in &c.warnings {
                        eprintln!("{}: warning: {w}", config.display());
                    }
                    for u in &c.unchecked {
                        eprintln!("{}: not checked (offline): {u}", config.display());
                    }
                    if c.unchecked.is_empty() {
                        println!("{}: ok ({})", config.display(), plural(c.routes.len(), "route"));
                    } else {
                        let n = c.unchecked.len();
                        println!(
                            "{}: ok offline ({} built; {n} not checked, listed above)",
                            config.display(),
                            plural(c.routes.len(), "route")
                        );
                    }
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
        Command::Sign { target, secret: key, ttl, exp, kid, format, options, config: config_path, key: named } => {
            if key.key_env.is_some() && key.key_file.is_some() {
                return Err("give exactly one of --key-env and --key-file".to_owned());
            }
            let exp = match exp {
                Some(e) => e,
                None => tollgate::auth::unix_now() + config::duration::parse_duration(&ttl)?.as_secs(),
            };
            let signer = registered(&format).ok_or_else(|| format!("unknown format {format:?}"))?.signer();
            // Options another format reads are refused rather than ignored.
            let theirs: Vec<&str> =
                options.0.keys().copied().filter(|name| !signer.options().iter().any(|o| o.name == *name)).collect();
            if let Some(name) = theirs.first() {
                return Err(format!("--{name} is not an option of --format {format}"));
            }
            let sign_key = match (&named, &config_path) {
                (Some(name), Some(path)) => SignKey {
                    source: KeySource::Bytes(config::hmac_secret(path, name).map_err(|e| with_file(path, &e))?),
                    encoding: None,
                },
                _ => key.key(),
            };
            let input = SignInput { target: &target, exp, kid: kid.as_deref(), key: &sign_key, options: &options.0 };
            let link = signer.sign(&input)?;
            println!("{link}");
            if let Some(path) = config_path {
                warn_if_refused(&path, &link)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { key, private_key, alg, ttl, kid, sub, iss, aud, paths, claims, jti } => {
            let alg: Algorithm = alg.parse().map_err(|_| format!("unknown algorithm {alg:?}"))?;
            let key = match private_key {
                Some(path) => TokenKey::PrivatePem(
                    std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                ),
                None => TokenKey::Secret(key.key().hmac()?),
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
