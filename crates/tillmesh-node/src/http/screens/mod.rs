//! The screens a node serves: the till screen (`GET /`, tills only), the kitchen display
//! (`GET /kitchen`, every node) and the script every screen loads (`GET /assets/screen.js`,
//! HQ's back office too).
//!
//! Every page and every part of one is HTML rendered here from templates compiled into the
//! binary (`templates/`); a part is served on its own under `/screens/…` so that the page's
//! script can render it again when the change stream says what it shows changed. The pages send
//! every edit to the JSON API (the CLI's), so bad input gets the API's errors; they compute no
//! money and read nothing but this node.

mod kitchen;
mod till;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tillmesh_core::{Amount, Currency, Timestamp};

use super::ApiError;
use crate::Till;

/// The kitchen display and its part: what every node serves (HQ too, behind its admin token).
pub(super) fn kitchen_routes() -> Router<Till> {
    Router::new()
        .route("/kitchen", get(kitchen::page))
        .route("/screens/kitchen/tickets", get(kitchen::tickets))
}

/// The script of every screen: served openly by every node (HQ's sign-in form needs it).
pub(super) fn script_route() -> Router {
    Router::new().route("/assets/screen.js", get(script))
}

/// The till screen and its parts: a till's own (HQ's `/` is its back office).
pub(super) fn till_routes() -> Router<Till> {
    Router::new()
        .route("/", get(till::page))
        .route("/screens/till/ticket", get(till::ticket))
        .route("/screens/till/orders", get(till::orders))
        .route("/screens/till/sync", get(till::sync))
}

/// The script every page loads: renders parts again on change-stream events, sends actions to
/// the API and shows its errors next to their fields (its header comment says how).
async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        include_str!("screen.js"),
    )
        .into_response()
}

/// A rendered template as an HTML answer; a template that fails to render (it cannot, short of
/// a bug) is a 500 with the reason logged.
pub fn html(template: &impl Template) -> Response {
    match template.render() {
        Ok(page) => Html(page).into_response(),
        Err(error) => {
            tracing::error!(%error, "a screen failed to render");
            ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                error: "internal",
                detail: "the screen failed to render".into(),
            }
            .into_response()
        }
    }
}

/// A part rendered into its page (a failure shows in the part, and is logged).
pub fn part(template: &impl Template) -> String {
    template.render().unwrap_or_else(|error| {
        tracing::error!(%error, "a screen's part failed to render");
        "<p class=\"error\">This part of the screen failed to render.</p>".into()
    })
}

/// An amount for display: `$1,234.50`, `-€0.10`, `CHF 12.00` (a symbol for the currencies that
/// have a well-known one, else the code).
pub fn money(amount: Amount, currency: Currency) -> String {
    let minor = amount.minor();
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    let whole = (magnitude / 100).to_string();
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let number = format!("{grouped}.{:02}", magnitude % 100);
    match currency.as_str() {
        "USD" => format!("{sign}${number}"),
        "EUR" => format!("{sign}€{number}"),
        "GBP" => format!("{sign}£{number}"),
        code => format!("{sign}{code}\u{a0}{number}"),
    }
}

/// `text` as one segment of a URL's path (`A/B 1` → `A%2FB%201`).
pub fn path_segment(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A time for a `<time data-ms>` element: the page's script shows it in the browser's time
/// zone; this (UTC) is what shows without the script.
#[derive(Debug, Clone, Copy)]
pub struct When(pub Timestamp);

impl When {
    /// Milliseconds since the epoch.
    pub fn ms(&self) -> i64 {
        self.0.0
    }

    /// ISO 8601 in UTC, to the second.
    pub fn utc(&self) -> String {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.0.0.max(0).unsigned_abs());
        humantime::format_rfc3339_seconds(at).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_show_with_their_currency_sign_and_thousands() {
        let usd = Currency::parse("USD").expect("USD");
        assert_eq!(money(Amount::from_minor(2405), usd), "$24.05");
        assert_eq!(money(Amount::from_minor(-10), Currency::parse("EUR").expect("EUR")), "-€0.10");
        assert_eq!(money(Amount::from_minor(123_456_789), usd), "$1,234,567.89");
        assert_eq!(money(Amount::from_minor(100_000), usd), "$1,000.00");
        assert_eq!(money(Amount::ZERO, Currency::parse("chf").expect("CHF")), "CHF\u{a0}0.00");
    }

    #[test]
    fn a_path_segment_keeps_no_character_a_path_gives_meaning_to() {
        assert_eq!(path_segment("A/B 1?#%"), "A%2FB%201%3F%23%25");
        assert_eq!(path_segment("STEAK"), "STEAK");
    }
}
