//! The command line speaks to people: every wrong input, per command, exits
//! non-zero with one `error:` line that names the thing and, where there is
//! something to do, a `what to do:` line — never a backtrace, an HTTP
//! client's jargon or a server's parser position. The real `mercato` binary
//! against a real host over HTTP.

use mercato_tests::{ADMIN_TOKEN, Host, Org};
use std::path::Path;

/// How a run ended and what it wrote to stderr.
struct Ran {
    code: i32,
    stderr: String,
}

/// Runs `mercato ARGS` with no MERCATO_* environment of the caller's, and
/// backtraces asked for (a report must not print one anyway).
async fn mercato(dir: &Path, args: &[&str]) -> Ran {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mercato-under-test"))
        .args(args)
        .current_dir(dir)
        .env_remove("MERCATO_SERVER")
        .env_remove("MERCATO_API_KEY")
        .env_remove("MERCATO_ADMIN_TOKEN")
        .env("RUST_BACKTRACE", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("mercato runs");
    Ran {
        code: output.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// What no report may contain.
const LEAKS: &[&str] = &[
    "Stack backtrace",
    "panicked",
    "builder error",
    "relative URL without a base",
    "error sending request",
    "at line 1 column",
    "Failed to deserialize",
    "Caused by",
];

/// Checks one wrong input: exit status, the fragments the report must
/// carry, and none of [`LEAKS`].
fn expect(ran: &Ran, case: &str, code: i32, fragments: &[&str]) {
    assert_eq!(ran.code, code, "{case}: exit status\n{}", ran.stderr);
    assert!(
        ran.stderr.starts_with("error:"),
        "{case}: a report starts with `error:`\n{}",
        ran.stderr
    );
    for fragment in fragments {
        assert!(
            ran.stderr.contains(fragment),
            "{case}: the report says `{fragment}`\n{}",
            ran.stderr
        );
    }
    for leak in LEAKS {
        assert!(
            !ran.stderr.contains(leak),
            "{case}: the report leaks `{leak}`\n{}",
            ran.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_reports_wrong_input_in_plain_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(&dir.path().join("data")).await;
    let consumer: Org = host.org("cli-consumer").await;
    let provider = host.org("cli-provider").await;
    host.publish(&provider, "unit-converter").await;
    let work = dir.path();
    std::fs::write(work.join("notwasm.wasm"), "# not a component\n".repeat(20)).expect("write");
    std::fs::write(work.join("mercato.toml"), "[capabilities.x]\n").expect("write");
    let server = host.url.as_str();
    let key = consumer.api_key.as_str();
    let signing = work.join("signing.key");
    let generated = mercato(
        work,
        &["keys", "generate", "--out", signing.to_str().expect("path")],
    )
    .await;
    assert_eq!(generated.code, 0, "{}", generated.stderr);
    let signing = signing.to_str().expect("path");

    // (case, arguments, exit status, what the report must say)
    let with = |rest: &[&'static str]| -> Vec<String> {
        let mut args: Vec<String> = vec!["--server".into(), server.into(), "--api-key".into()];
        args.push(key.into());
        args.extend(rest.iter().map(|s| s.to_string()));
        args
    };
    let cases: Vec<(&str, Vec<String>, i32, Vec<&str>)> = vec![
        (
            "a server that is not a URL",
            vec!["--server".into(), "not-a-url".into(), "capabilities".into()],
            2,
            vec!["`not-a-url` is not a host address", "http://HOST:PORT"],
        ),
        (
            "a negative price",
            with(&["discover", "convert units", "--max-price", "-5"]),
            2,
            vec!["`-5` is negative"],
        ),
        (
            "a contract of zero hours",
            with(&[
                "negotiate",
                "unit-converter.convert",
                "--max-price",
                "5",
                "--hours",
                "0",
            ]),
            2,
            vec!["--hours"],
        ),
        (
            "a retention that does not exist",
            with(&[
                "negotiate",
                "unit-converter.convert",
                "--max-price",
                "5",
                "--retention",
                "forever",
            ]),
            2,
            vec!["none, 24h, 30d"],
        ),
        (
            "a score out of range",
            with(&["rate", "tx_nope", "9"]),
            2,
            vec!["1..=5"],
        ),
        (
            "an input that is not JSON",
            with(&["invoke", "unit-converter.convert", "--input", "{not json"]),
            1,
            vec!["--input is not JSON"],
        ),
        (
            "an unknown capability (invoke)",
            with(&["invoke", "no-such.thing", "--input", "{}"]),
            1,
            vec!["no capability `no-such.thing`"],
        ),
        (
            "an unknown capability (quote)",
            with(&["quote", "no-such.thing"]),
            1,
            vec!["no capability `no-such.thing`"],
        ),
        (
            "an id with URL characters stays one id",
            with(&["quote", "a/b?c=d"]),
            1,
            vec!["`a/b?c=d`"],
        ),
        (
            "an unknown transaction",
            with(&["rate", "tx_nope", "5"]),
            1,
            vec!["no transaction `tx_nope`"],
        ),
        (
            "an unknown contract",
            with(&[
                "invoke",
                "unit-converter.convert",
                "--input",
                "{}",
                "--contract",
                "c_nope",
            ]),
            1,
            vec!["no contract `c_nope`"],
        ),
        (
            "an unknown key",
            with(&["keys", "revoke", "ed25519:nope"]),
            1,
            vec!["no key `ed25519:nope`"],
        ),
        (
            "an unknown organisation",
            vec![
                "--server".into(),
                server.into(),
                "--admin-token".into(),
                ADMIN_TOKEN.into(),
                "org".into(),
                "verify".into(),
                "org_nope".into(),
            ],
            1,
            vec!["no organisation `org_nope`"],
        ),
        (
            "a wrong API key",
            vec![
                "--server".into(),
                server.into(),
                "--api-key".into(),
                "mk_wrong".into(),
                "balance".into(),
            ],
            1,
            vec!["unauthorized", "what to do:", "--api-key"],
        ),
        (
            "no API key",
            vec!["--server".into(), server.into(), "balance".into()],
            1,
            vec!["needs --api-key"],
        ),
        (
            "a wrong admin token",
            vec![
                "--server".into(),
                server.into(),
                "--admin-token".into(),
                "wrong".into(),
                "admin".into(),
                "ledger".into(),
            ],
            1,
            vec!["what to do:", "--admin-token"],
        ),
        (
            "a file that is not WebAssembly",
            vec![
                "attest".into(),
                "notwasm.wasm".into(),
                "--manifest".into(),
                "mercato.toml".into(),
            ],
            1,
            vec![],
        ),
        (
            "a missing file",
            with(&[
                "publish",
                "missing.wasm",
                "--manifest",
                "mercato.toml",
                "--key",
            ])
            .into_iter()
            .chain([signing.to_string()])
            .collect(),
            1,
            vec!["cannot read missing.wasm"],
        ),
        (
            "mcp-stdio without a key",
            vec!["--server".into(), server.into(), "mcp-stdio".into()],
            1,
            vec!["mcp-stdio needs --api-key"],
        ),
        (
            "mcp-stdio with a wrong key",
            vec![
                "--server".into(),
                server.into(),
                "--api-key".into(),
                "mk_wrong".into(),
                "mcp-stdio".into(),
            ],
            1,
            vec!["does not know this API key", "what to do:"],
        ),
    ];
    for (case, args, code, fragments) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ran = mercato(work, &args).await;
        if *case == "a file that is not WebAssembly" {
            // `attest` prints its failed report (not an error) and exits 1;
            // the reason is whole, not cut at a bracket.
            assert_eq!(ran.code, 1, "{case}");
            continue;
        }
        expect(&ran, case, *code, fragments);
    }
    let attested = tokio::process::Command::new(env!("CARGO_BIN_EXE_mercato-under-test"))
        .args(["attest", "notwasm.wasm", "--manifest", "mercato.toml"])
        .current_dir(work)
        .output()
        .await
        .expect("attest runs");
    let printed = String::from_utf8_lossy(&attested.stdout);
    assert!(
        printed.contains("not a WebAssembly file") && !printed.contains("expected=["),
        "{printed}"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_command_explains_an_unreachable_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let server = format!("http://127.0.0.1:{port}");
    let commands: &[&[&str]] = &[
        &["capabilities"],
        &["discover", "convert units"],
        &["quote", "a.b"],
        &["invoke", "a.b", "--input", "{}"],
        &["balance"],
        &["negotiate", "a.b", "--max-price", "5"],
        &["rate", "tx_x", "5"],
        &["keys", "list"],
        &["org", "create", "--name", "acme"],
        &["org", "verify", "org_x"],
        &["admin", "ledger"],
        &["admin", "deposit", "org_x", "5"],
        &["verify", "report.json"],
        &["mcp-stdio"],
    ];
    std::fs::write(dir.path().join("report.json"), "{}").expect("write");
    for command in commands {
        let mut args = vec![
            "--server",
            server.as_str(),
            "--api-key",
            "mk_x",
            "--admin-token",
            "t",
        ];
        args.extend_from_slice(command);
        let ran = mercato(dir.path(), &args).await;
        expect(
            &ran,
            &command.join(" "),
            1,
            &[
                &format!("cannot reach the host at {server}"),
                "connection refused",
                "what to do: start one with `mercato serve`",
            ],
        );
    }
}
