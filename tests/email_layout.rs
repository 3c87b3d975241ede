//! The stock HTML emails fit a 375 px wide phone screen: each is laid out by a real headless
//! Chromium in a 375 px frame, with long names, addresses and error texts, and nothing may be
//! wider than the frame (no sideways scrolling).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reload_butler::config::{Config, Env, ScriptLogLines};
use reload_butler::qlik::event::ReloadEvent;
use reload_butler::qlik::model::Enrichment;
use reload_butler::render::context::{build, AlertInput};
use reload_butler::render::notice::{digest_item, Digest, Recovery};
use reload_butler::render::{sample, Rendered, Renderer};

const PHONE: u32 = 375;

const CONFIG: &str = r#"
poll: {enabled: false}
enrich: {enabled: false}
tenants:
  - {id: xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct, url: https://acme-analytics.eu.qlikcloud.com}
destinations:
  - {name: mail, type: email, from: a@acme.com, recipients: [b@acme.com], smtp: {host: smtp.acme.com}, group_window: 30s, notify_recovery: true}
"#;

/// The width the page's content takes in a `PHONE` wide frame, and the frame's width, as
/// Chromium lays it out.
fn laid_out_width(html: &str) -> (u32, u32) {
    let dir = tempfile::tempdir().unwrap();
    let escaped = html
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let page = format!(
        "<html><body style=\"margin:0\"><iframe id=\"f\" style=\"width:{PHONE}px;height:900px;border:0\" srcdoc=\"{escaped}\"></iframe>\
         <script>window.onload = function () {{ var d = document.getElementById('f').contentDocument.documentElement; \
         document.title = 'W=' + d.scrollWidth + ' V=' + d.clientWidth; }};</script></body></html>"
    );
    let file = dir.path().join("page.html");
    std::fs::write(&file, page).unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("profile").display()
        ))
        .arg("--dump-dom")
        .arg(format!("file://{}", file.display()))
        .output()
        .expect("run chromium (Debian package chromium; scripts/test installs it)");
    let dom = String::from_utf8_lossy(&out.stdout);
    let title = dom
        .split("<title>")
        .nth(1)
        .and_then(|t| t.split("</title>").next())
        .unwrap_or_else(|| panic!("no title in Chromium's DOM: {dom}"));
    let number = |key: &str| -> u32 {
        title
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{key} in {title}"))
    };
    (number("W="), number("V="))
}

fn assert_fits(what: &str, html: &str) {
    assert!(
        html.contains("QuarterlyQuarterly"),
        "the long name is in the {what} email"
    );
    let (width, frame) = laid_out_width(html);
    assert_eq!(frame, PHONE, "the frame is a phone's width");
    assert!(
        width <= PHONE,
        "the {what} email is {width} px wide on a {PHONE} px screen"
    );
}

/// The sample failure with everything long: a long app name without spaces, a long owner
/// address, a long error text.
fn long_sample() -> (ReloadEvent, Enrichment) {
    let (mut event, mut enrichment) = (sample::event(), sample::enrichment());
    let name = format!("Finance_{}_Consolidated", "Quarterly".repeat(6));
    event.app_name = Some(name.clone());
    enrichment.app.as_mut().unwrap().name = Some(name);
    enrichment.owner.as_mut().unwrap().email = Some(format!(
        "{}@subsidiary.example-holdings.com",
        "firstname.lastname".repeat(2)
    ));
    enrichment.space.as_mut().unwrap().name =
        Some("Finance and Controlling — Nordics shared reporting space".into());
    enrichment.reload.as_mut().unwrap().error_message = Some(format!(
        "Connector error: {}",
        "ODBC_CONNECTION_REFUSED/".repeat(8)
    ));
    (event, enrichment)
}

fn html_of(rendered: Rendered) -> String {
    match rendered {
        Rendered::Email { html, .. } => html,
        other => panic!("an email, not {other:?}"),
    }
}

#[test]
fn stock_emails_fit_a_phone_screen() {
    let config = Config::from_yaml(CONFIG, Path::new("layout.yaml"), &Env::new()).unwrap();
    let renderer = Renderer::new(&config).unwrap();
    let (event, enrichment) = long_sample();
    let input = AlertInput::for_sample(&config, &event, &enrichment);

    assert_fits("alert", &html_of(renderer.render(0, &input).unwrap()));

    let no_log = ScriptLogLines { head: 0, tail: 0 };
    let mut ctx = build(&input, "mail", no_log);
    let now = chrono::Utc::now();
    Recovery {
        failing_since: now - chrono::Duration::minutes(90),
        recovered_at: now,
        failures: 3,
        timezone: None,
    }
    .extend(&mut ctx);
    assert_fits("recovery", &html_of(renderer.render_recovery(0, &ctx)));

    let items: Vec<_> = (0..12)
        .map(|_| digest_item(&build(&input, "mail", no_log)))
        .collect();
    let digest = Digest {
        items: &items,
        threshold: 5,
        window: Duration::from_secs(30),
        first_at: now,
        last_at: now,
        timezone: None,
    };
    assert_fits("digest", &html_of(renderer.render_digest(0, &digest)));
}
