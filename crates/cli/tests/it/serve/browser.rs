//! Headless Chromium through WebDriver: Debian's `chromedriver` started on a free
//! port, a `fantoccini` session on it, and the few things the page tests ask of it.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::{Reaped, skip};

const DRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A browser session, and the driver that runs it.
pub(crate) struct Browser {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) client: Client,
    _driver: Reaped,
}

impl Browser {
    /// A headless Chromium, or `None` (with a line saying so) where chromedriver is
    /// not installed; under CI its absence fails the test.
    pub(crate) fn start() -> Option<Browser> {
        if !Path::new(DRIVER).exists() || !Path::new(CHROMIUM).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{DRIVER} or {CHROMIUM} is missing: .ci/run installs chromium and chromium-driver"
            );
            skip("no chromedriver (apt install chromium chromium-driver)");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(DRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Reaped(driver);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let caps = json!({"goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1360,1000", "--no-first-run", "--no-default-browser-check"],
        }});
        let caps = caps.as_object().unwrap().clone();
        let t = Instant::now();
        let client = loop {
            let tried = rt.block_on(
                ClientBuilder::native()
                    .capabilities(caps.clone())
                    .connect(&format!("http://127.0.0.1:{port}")),
            );
            match tried {
                Ok(c) => break c,
                Err(e) if t.elapsed() < Duration::from_secs(30) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("no WebDriver session: {e}"),
            }
        };
        Some(Browser {
            rt,
            client,
            _driver: driver,
        })
    }

    pub(crate) fn goto(&self, url: &str) {
        self.rt
            .block_on(self.client.goto(url))
            .expect("the page opens");
    }

    /// Runs `script` in the page (its `arguments` are `args`) and returns its value.
    pub(crate) fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.rt
            .block_on(self.client.execute(script, args))
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// The text of the first element `css` matches ("" if none).
    pub(crate) fn text(&self, css: &str) -> String {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
            vec![json!(css)],
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The first element `css` matches.
    fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.rt
            .block_on(self.client.find(Locator::Css(css)))
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    /// Clicks the first element `css` matches.
    pub(crate) fn click(&self, css: &str) {
        let e = self.find(css);
        self.rt
            .block_on(e.click())
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types `text` into the input `css` matches.
    pub(crate) fn fill(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.rt.block_on(async {
            e.clear().await.unwrap();
            e.send_keys(text).await.unwrap();
        });
    }

    /// Waits until the page's `script` returns true (90 s at most).
    pub(crate) fn until(&self, what: &str, script: &str) {
        let t = Instant::now();
        while self.js(script, vec![]) != json!(true) {
            assert!(
                t.elapsed() < Duration::from_secs(90),
                "gave up waiting for {what}; the page says: {}",
                self.text("main")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A screenshot of the window into `$RUDDER_SCREENSHOTS/NAME.png`, when set.
    pub(crate) fn screenshot(&self, name: &str) {
        if let Some(dir) = std::env::var_os("RUDDER_SCREENSHOTS") {
            let png = self
                .rt
                .block_on(self.client.screenshot())
                .expect("a screenshot");
            std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let c = self.client.clone();
        let _ = self.rt.block_on(c.close());
    }
}
