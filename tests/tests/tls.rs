//! HTTPS: `mercato serve --tls-cert/--tls-key` with certificates made here,
//! a renewed pair taking effect without a restart (file change, SIGHUP),
//! and the CLI speaking https:// with `--ca-cert`.

use mercato_tests::{Host, test_config};
use std::path::Path;
use std::time::Duration;

/// A self-signed certificate for 127.0.0.1 and localhost: (cert PEM, key PEM).
fn self_signed() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("a certificate");
    (made.cert.pem(), made.key_pair.serialize_pem())
}

/// A client that trusts only `cert_pem` (besides nothing else it needs).
fn trusting(cert_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

fn write(dir: &Path, (cert, key): &(String, String)) {
    std::fs::write(dir.join("key.pem"), key).expect("key");
    std::fs::write(dir.join("cert.pem"), cert).expect("cert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_serves_https_and_takes_a_renewed_certificate_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = self_signed();
    write(dir.path(), &first);
    let mut config = test_config(&dir.path().join("data"));
    config.tls_cert = Some(dir.path().join("cert.pem"));
    config.tls_key = Some(dir.path().join("key.pem"));
    let host = Host::start_with(config).await;
    assert!(host.url.starts_with("https://"), "{}", host.url);
    let health = format!("{}/healthz", host.url);

    let answer = trusting(&first.0).get(&health).send().await.expect("https");
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    // Over HTTPS the pages' session cookie is Secure too.
    let signed_in = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(first.0.as_bytes()).expect("pem"))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{}/signin", host.url))
        .form(&[("key", mercato_tests::ADMIN_TOKEN)])
        .send()
        .await
        .expect("signs in");
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // A client that does not trust the certificate is refused in the handshake.
    let stranger = trusting(&self_signed().0).get(&health).send().await;
    assert!(stranger.is_err(), "an untrusted certificate was accepted");
    // Plain HTTP on the TLS port is not served.
    let plain = reqwest::Client::new()
        .get(health.replace("https://", "http://"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP was answered: {plain:?}");

    // The CLI speaks https:// with --ca-cert, and says why without it.
    let cli = |args: Vec<String>| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_mercato-under-test"))
            .args(args)
            .env_remove("MERCATO_CA_CERT")
            .env_remove("MERCATO_SERVER")
            .output()
    };
    let ca = dir.path().join("cert.pem").display().to_string();
    let listed = cli(vec![
        "--server".into(),
        host.url.clone(),
        "--ca-cert".into(),
        ca.clone(),
        "capabilities".into(),
    ])
    .await
    .expect("cli");
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let refused = cli(vec![
        "--server".into(),
        host.url.clone(),
        "capabilities".into(),
    ])
    .await
    .expect("cli");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("certificate is not trusted") && stderr.contains("--ca-cert"),
        "{stderr}"
    );

    // A half-written renewal (a key that is not the certificate's) leaves
    // the old pair in service.
    let second = self_signed();
    std::fs::write(dir.path().join("key.pem"), &second.1).expect("key");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = trusting(&first.0)
        .get(&health)
        .send()
        .await
        .expect("old pair");
    assert_eq!(still.status(), reqwest::StatusCode::OK);
    // The whole renewal takes effect for new connections, no restart.
    write(dir.path(), &second);
    let mut renewed = false;
    for _ in 0..50 {
        if trusting(&second.0).get(&health).send().await.is_ok() {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        renewed,
        "the renewed certificate was not taken up within 10 s"
    );
    assert!(
        trusting(&first.0).get(&health).send().await.is_err(),
        "the old one is gone"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_a_bad_pair_stops_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pair = self_signed();
    write(dir.path(), &pair);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let serve = |cert: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_mercato-under-test"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .arg("--tls-cert")
            .arg(dir.path().join(cert))
            .arg("--tls-key")
            .arg(dir.path().join("key.pem"))
            .env("MERCATO_ADMIN_TOKEN", "tls-test-admin-token")
            .env("RUST_LOG", "mercato_host=info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("serve")
    };
    // A certificate file that is not one: the host does not start, and says why.
    std::fs::write(dir.path().join("broken.pem"), "not a certificate").expect("write");
    let broken = serve("broken.pem").wait_with_output().await.expect("exits");
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(!broken.status.success());
    assert!(stderr.contains("broken.pem"), "{stderr}");

    let mut host = serve("cert.pem");
    let health = format!("https://127.0.0.1:{port}/healthz");
    let mut up = false;
    for _ in 0..150 {
        if trusting(&pair.0).get(&health).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(up, "the host did not serve HTTPS within 30 s");
    let pid = host.id().expect("pid").to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(hup.success());
    // The signal reloads the (unchanged) files: the log says so, and the
    // host is still serving.
    let stderr = host.stderr.take().expect("stderr");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
    let reloaded = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("TLS certificate reloaded") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(reloaded, "no reload logged after SIGHUP");
    let answer = trusting(&pair.0)
        .get(&health)
        .send()
        .await
        .expect("still serving");
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    host.kill().await.expect("kill");
}
