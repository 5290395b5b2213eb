//! Real Chromium for the screen tests, driven over the W3C WebDriver protocol by Debian's
//! `chromedriver` (`/usr/bin/chromedriver`, `/usr/bin/chromium`; `.ci/run` installs them).
//! Only the few commands the tests use, over reqwest.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long an element may take to appear.
const WAIT: Duration = Duration::from_secs(30);

/// A headless Chromium session; the driver process ends with it.
pub struct Browser {
    driver: Child,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    /// A new session, or `None` (the caller prints SKIPPED) when Chromium is not installed.
    pub async fn start() -> Option<Browser> {
        if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("addr")
            .port();
        // A process group of its own: dropping the browser ends Chromium too, even when a
        // failing test never closed the session.
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900"
            ]}
        }}});
        let started = Instant::now();
        let session = loop {
            match http.post(format!("{base}/session")).json(&capabilities).send().await {
                Ok(answer) => {
                    let answer: Value = answer.json().await.expect("a WebDriver answer");
                    let id = answer["value"]["sessionId"].as_str();
                    break id.unwrap_or_else(|| panic!("no session: {answer}")).to_string();
                }
                // The driver is still starting.
                Err(_) if started.elapsed() < WAIT => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(error) => panic!("chromedriver did not answer: {error}"),
            }
        };
        Some(Browser { driver, session: format!("{base}/session/{session}"), http })
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let request = self.http.request(method.clone(), format!("{}{path}", self.session));
        let request = if method == reqwest::Method::POST { request.json(&body) } else { request };
        let answer = request.send().await.expect("WebDriver request");
        let answer: Value = answer.json().await.expect("a WebDriver answer");
        answer["value"].clone()
    }

    /// Opens `url`.
    pub async fn open(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", json!({"url": url})).await;
    }

    /// The first element matching the CSS `selector`, waiting until one exists.
    pub async fn find(&self, selector: &str) -> String {
        let started = Instant::now();
        loop {
            let found = self
                .command(
                    reqwest::Method::POST,
                    "/element",
                    json!({"using": "css selector", "value": selector}),
                )
                .await;
            if let Some(id) = found.get(ELEMENT).and_then(Value::as_str) {
                return id.to_string();
            }
            assert!(started.elapsed() < WAIT, "no element {selector:?} after {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until no element matches the CSS `selector`.
    pub async fn gone(&self, selector: &str) {
        let started = Instant::now();
        loop {
            let found = self
                .command(
                    reqwest::Method::POST,
                    "/elements",
                    json!({"using": "css selector", "value": selector}),
                )
                .await;
            if found.as_array().is_some_and(Vec::is_empty) {
                return;
            }
            assert!(started.elapsed() < WAIT, "{selector:?} still there after {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The visible text of the first element matching `selector` (waiting for one; again if
    /// the page redrew it in between).
    pub async fn text(&self, selector: &str) -> String {
        let started = Instant::now();
        loop {
            let element = self.find(selector).await;
            let text =
                self.command(reqwest::Method::GET, &format!("/element/{element}/text"), Value::Null).await;
            if let Some(text) = text.as_str() {
                return text.to_string();
            }
            assert!(started.elapsed() < WAIT, "no text for {selector:?}: {text}");
        }
    }

    /// The value of the first input or text area matching `selector` (waiting for one; again if
    /// the page redrew it in between).
    pub async fn value(&self, selector: &str) -> String {
        let started = Instant::now();
        loop {
            let element = self.find(selector).await;
            let value = self
                .command(reqwest::Method::GET, &format!("/element/{element}/property/value"), Value::Null)
                .await;
            if let Some(value) = value.as_str() {
                return value.to_string();
            }
            assert!(started.elapsed() < WAIT, "no value for {selector:?}: {value}");
        }
    }

    /// Waits until the first element matching `selector` shows `wanted` in its text; returns
    /// the text.
    pub async fn text_containing(&self, selector: &str, wanted: &str) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(selector).await;
            if text.contains(wanted) {
                return text;
            }
            assert!(started.elapsed() < WAIT, "{selector:?} shows {text:?}, not {wanted:?}, after {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the first element matching `selector` (waiting for one; again if the page
    /// redrew it in between).
    pub async fn click(&self, selector: &str) {
        let started = Instant::now();
        loop {
            let element = self.find(selector).await;
            let answer =
                self.command(reqwest::Method::POST, &format!("/element/{element}/click"), json!({})).await;
            if answer.is_null() {
                return;
            }
            assert!(started.elapsed() < WAIT, "cannot click {selector:?}: {answer}");
        }
    }

    /// Types `text` into the first element matching `selector` (an input or a text area),
    /// replacing what it held.
    pub async fn fill(&self, selector: &str, text: &str) {
        let element = self.find(selector).await;
        let cleared =
            self.command(reqwest::Method::POST, &format!("/element/{element}/clear"), json!({})).await;
        assert!(cleared.is_null(), "cannot clear {selector:?}: {cleared}");
        let typed = self
            .command(reqwest::Method::POST, &format!("/element/{element}/value"), json!({"text": text}))
            .await;
        assert!(typed.is_null(), "cannot type into {selector:?}: {typed}");
    }

    /// Scrolls the page back to its top (before a screenshot).
    pub async fn scroll_to_top(&self) {
        let scrolled = self
            .command(
                reqwest::Method::POST,
                "/execute/sync",
                json!({"script": "window.scrollTo(0, 0)", "args": []}),
            )
            .await;
        assert!(scrolled.is_null(), "cannot scroll: {scrolled}");
    }

    /// Saves a PNG screenshot of the page to `path`.
    pub async fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let shot = self.command(reqwest::Method::GET, "/screenshot", Value::Null).await;
        let png =
            base64::engine::general_purpose::STANDARD.decode(shot.as_str().expect("base64")).expect("PNG");
        std::fs::write(path, png).expect("write the screenshot");
    }
}

/// Where the screen tests write their screenshots (`target/screens/`), created if missing.
pub fn screens_dir() -> std::path::PathBuf {
    let screens = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("screens");
    std::fs::create_dir_all(&screens).expect("screens directory");
    screens
}

impl Browser {
    /// Ends the session (Chromium quits) and the driver.
    pub async fn close(self) {
        self.command(reqwest::Method::DELETE, "", Value::Null).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The driver's whole group: Chromium and its helpers with it.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
