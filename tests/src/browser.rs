//! A headless Chromium for the pages' tests: Debian's `chromium` driven
//! through `chromedriver` (WebDriver, via fantoccini), with the waits a page
//! that swaps its body (htmx) needs, and screenshots at two widths.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to show what a step waits for.
const WAIT: Duration = Duration::from_secs(20);

/// A chromedriver process and a headless Chromium session through it;
/// both end when this is dropped or closed.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Browser {
    pub async fn open() -> Browser {
        for program in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(program).exists(),
                "{program} is missing: install Debian's chromium and chromium-driver \
                 (apt-get install chromium chromium-driver; .ci/run does)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-quic",
                    "--window-size=1440,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        // Bounded: chromedriver takes a moment to listen.
        for _ in 0..100 {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        driver,
                        _profile: profile,
                    };
                }
                Err(e) => {
                    last = Some(e.to_string());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!("no WebDriver session: {last:?}");
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigates");
    }

    /// The first element matching `css`, waited for.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => {
                let url = self.client.current_url().await;
                let page = self.client.source().await.unwrap_or_default();
                panic!("no `{css}` on {url:?}: {e}\n{page}")
            }
        }
    }

    /// The text of the first element matching `css`, found again when the
    /// page swapped it out under us.
    pub async fn text(&self, css: &str) -> String {
        self.text_where(css, |_| true).await
    }

    /// Waits (bounded) until no element matches `css`.
    pub async fn gone(&self, css: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::time::Instant::now() < deadline {
            if self
                .client
                .find_all(Locator::Css(css))
                .await
                .is_ok_and(|found| found.is_empty())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("`{css}` is still on the page")
    }

    /// Waits (bounded) until the first element matching `css` has a text
    /// `wanted` accepts: a form's answer replaces the page asynchronously,
    /// and the page before it may hold an element of the same name.
    pub async fn text_where(&self, css: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if wanted(&text) {
                    return text;
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("`{css}` never showed the text wanted; last: {last:?}")
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clears");
        field.send_keys(value).await.expect("types");
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("clicks");
    }

    /// Signs in through the page with a key or token.
    pub async fn sign_in(&self, host: &crate::Host, key: &str) {
        self.goto(&format!("{}/signin", host.url)).await;
        self.fill("#key", key).await;
        self.click("form[action='/signin'] button[type=submit]")
            .await;
        // Signed in: the navigation offers to sign out.
        self.find("form[action='/signout']").await;
    }

    pub async fn sign_out(&self) {
        self.click("form[action='/signout'] button").await;
        self.find("a[href='/signin']").await;
    }

    /// The value of the session cookie (HttpOnly: only WebDriver sees it).
    pub async fn session_cookie(&self) -> String {
        self.client
            .get_named_cookie("mercato_session")
            .await
            .expect("a session cookie")
            .value()
            .to_string()
    }

    /// Saves the page as it looks at 375 and at 1440 px wide.
    pub async fn screenshots(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        for width in [375u32, 1440] {
            self.client
                .set_window_size(width, 1000)
                .await
                .expect("resizes");
            let png = self.client.screenshot().await.expect("screenshot");
            assert!(png.starts_with(b"\x89PNG"), "a PNG");
            std::fs::write(dir.join(format!("{name}-{width}.png")), png).expect("writes");
        }
        self.client
            .set_window_size(1440, 1000)
            .await
            .expect("resizes");
    }
}
