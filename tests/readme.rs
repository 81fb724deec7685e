//! The README's signing snippets (shell with openssl, Python, Node), run as
//! written: the URLs they print must pass tollgate in front of nginx.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{Http, Nginx, Tollgate};

/// The body of the README code block whose info string ends with `tag`.
fn snippet(tag: &str) -> String {
    let readme = std::fs::read_to_string(common::repo().join("README.md")).unwrap();
    let mut lines = readme.lines().skip_while(|l| !(l.starts_with("```") && l.ends_with(tag)));
    assert!(lines.next().is_some(), "README has no block tagged {tag}");
    lines.take_while(|l| !l.starts_with("```")).collect::<Vec<_>>().join("\n") + "\n"
}

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "snippet failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_signing_snippets_produce_accepted_urls() {
    let nginx = Nginx::start(&[("media/report.txt", b"report"), ("media/caf\u{e9} noir.jpg", b"coffee")]);
    let dir = tempfile::tempdir().unwrap();
    let secret = String::from_utf8(common::random_secret()).unwrap();
    common::write_file(dir.path(), "media.key", secret.as_bytes());
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
admin: 127.0.0.1:0
keys:
  media: {{ hmac: {{ secret_file: media.key }} }}
upstreams:
  nginx: {{ url: "http://{}" }}
routes:
  - {{ name: media, prefix: /media/, upstream: nginx, auth: {{ signed_url: {{ keys: [media] }} }} }}
log: {{ access_log: false }}
"#,
        nginx.addr
    );
    let tg = Tollgate::start(&yaml, dir.path()).await;
    let http = Http::h1();

    let shell = output(
        Command::new("bash")
            .arg("-c")
            .arg(snippet("sign-openssl"))
            .env("SECRET", &secret)
            .env("FILE_PATH", "/media/report.txt"),
    );
    let r = http.get(&tg.url(&shell)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "report"), "shell snippet: {shell}");

    let python = common::repo().join(".venv/bin/python");
    let py = snippet("sign-python") + "import os\nprint(sign_url(os.environb[b'SECRET'], os.environ['FILE_PATH']))\n";
    let url =
        output(Command::new(python).arg("-c").arg(py).env("SECRET", &secret).env("FILE_PATH", "/media/café noir.jpg"));
    let r = http.get(&tg.url(&url)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "coffee"), "python snippet: {url}");

    let node = common::require("node", &["/usr/bin/node"]);
    let js = snippet("sign-node") + "console.log(signUrl(process.env.SECRET, process.env.FILE_PATH));\n";
    let url =
        output(Command::new(node).arg("-e").arg(js).env("SECRET", &secret).env("FILE_PATH", "/media/café noir.jpg"));
    let r = http.get(&tg.url(&url)).await;
    assert_eq!((r.status, r.text().as_str()), (200, "coffee"), "node snippet: {url}");
}
