//! HQ's back office in real Chromium, beside a till's screen: HQ and till A as real processes.
//! Signing in with a wrong token is refused next to the field; with HQ's admin token the office
//! shows till A online. An item added to the menu in the office appears on A's screen, which
//! sells it; a card payment taken by clicking on A's screen reads "awaiting HQ" there
//! and appears among the payments awaiting settlement; one click on Capture in the back office
//! and A's screen shows it captured, without a reload, while the office counts the day's card
//! sales of till A and offers the refund. A price changed in the office (a bad one refused next
//! to it) reaches A's menu while the order keeps the price it was sold at. A legacy device is added (its token shown once) and
//! revoked. Screenshot: `target/screens/back-office.png`. Prints SKIPPED without Chromium.

mod support;

use support::browser::{Browser, screens_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_payment_is_captured_from_the_back_office_and_the_till_shows_it() {
    let Some(office) = Browser::start().await else {
        println!("SKIPPED: HQ back office in Chromium (install chromium and chromium-driver)");
        return;
    };
    let till_screen = Browser::start().await.expect("a second Chromium");
    let dir = tempfile::tempdir().expect("tempdir");
    support::shop(dir.path(), &["A"]);
    let (hq, admin_token) = support::start_shop_hq(dir.path(), 300);
    let a = support::start_shop_till(dir.path(), "A", 300, &[hq.peer.as_deref().expect("HQ listens")]);

    // Signing in: a wrong token is refused next to the field, the right one opens the office.
    office.open(&format!("{}/", hq.url)).await;
    office.fill("#sign-in-form [name=token]", "not-the-token").await;
    office.click("#sign-in-form button[type=submit]").await;
    office.find("#sign-in-form [name=token][aria-invalid='true']").await;
    assert!(office.text("#error-token").await.contains("not HQ's admin token"));
    office.fill("#sign-in-form [name=token]", &admin_token).await;
    office.click("#sign-in-form button[type=submit]").await;
    office.find("#link.live").await;
    office.find("#tills tr[data-till='till-A'][data-online='true']").await;

    // The menu editor: an item added on HQ is sold on till A's screen at HQ's price.
    till_screen.open(&format!("{}/", a.url)).await;
    till_screen.find("#link.live").await;
    till_screen.find("#menu[hidden]").await;
    for (field, value) in
        [("sku", "STEAK"), ("name", "Steak frites"), ("category", "Mains"), ("price", "23.40")]
    {
        office.fill(&format!("#add-menu-item [name={field}]"), value).await;
    }
    office.click("#add-menu-item button[type=submit]").await;
    office.find("#menu tr[data-sku='STEAK']").await;
    let steak = "#menu button[data-sku='STEAK']";
    till_screen.text_containing(steak, "$23.40").await;

    // A card payment on till A's screen: awaiting HQ there, awaiting settlement in the office.
    till_screen.click(steak).await;
    till_screen.text_containing("#items tr:nth-child(1)", "Steak frites").await;
    till_screen.fill("#card-last4", "1881").await;
    till_screen.click("#pay-card").await;
    till_screen.find("#payment.awaiting").await;
    let http = reqwest::Client::new();
    let ids = support::order_ids(&http, &a.url).await;
    let [id] = ids.as_slice() else { panic!("one order on A: {ids:?}") };
    let unsettled = format!("#unsettled tr[data-order-id='{id}']");
    let row = office.text(&unsettled).await;
    assert!(row.contains("A-1") && row.contains("card"), "the office lists the claim: {row:?}");

    // Captured with one click: the till's screen follows, the office moves it to captured.
    office.click(&format!("{unsettled} button.capture")).await;
    till_screen.find("#payment.confirmed").await;
    assert_eq!(till_screen.text("#payment").await, "CAPTURED — settled by HQ");
    office.gone(&unsettled).await;
    office.find(&format!("#captured tr[data-order-id='{id}'] button.refund")).await;
    let by_method = office.text_containing("#by-method", "card").await;
    assert!(by_method.contains("1 order"), "one card sale today: {by_method:?}");
    let by_till = office.text_containing("#by-till", "1 order").await;
    assert!(by_till.contains("$25.33"), "till A's sales, 23.40 with 8.25 % tax: {by_till:?}");
    office.scroll_to_top().await;
    office.screenshot(&screens_dir().join("back-office.png")).await;
    // A price changed in the office: a bad one is refused next to it, a good one reaches the
    // till's menu at once, and the order sold before keeps its price.
    let price = "#menu tr[data-sku='STEAK'] [name=price]";
    office.fill(price, "23.999").await;
    office.click("#menu tr[data-sku='STEAK'] button.save").await;
    office.find(&format!("{price}[aria-invalid]")).await;
    let error = office.text("#menu tr[data-sku='STEAK'] .error").await;
    assert!(error.contains("price"), "the price's error: {error:?}");
    office.fill(price, "24.00").await;
    office.click("#menu tr[data-sku='STEAK'] button.save").await;
    till_screen.text_containing(steak, "$24.00").await;
    assert!(till_screen.text("#items tr:nth-child(1)").await.contains("$23.40"), "sold at the old price");

    // A legacy device: its token shown once, then revoked.
    office.fill("#add-device [name=deviceId]", "kiosk-1").await;
    office.click("#add-device button[type=submit]").await;
    let shown = office.text_containing("#new-token", "kiosk-1").await;
    let token = shown.rsplit(' ').next().expect("the token").to_string();
    let updates_with_token = || {
        http.get(format!("{}/api/sync/updates?deviceId=kiosk-1&since=0", hq.url)).bearer_auth(&token).send()
    };
    let pushed = updates_with_token().await.expect("send");
    assert_eq!(pushed.status(), reqwest::StatusCode::OK, "the shown token works");
    office.click("#devices tr[data-device-id='kiosk-1'] button.revoke").await;
    office.text_containing("#devices tr[data-device-id='kiosk-1']", "revoked").await;
    let refused = updates_with_token().await.expect("send");
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED, "a revoked token is refused");

    // Signed out: the office is gone, and so is access without the token.
    office.click("#sign-out").await;
    office.find("#sign-in:not([hidden])").await;
    let anonymous = http.get(format!("{}/api/hq/overview?since=0", hq.url)).send().await.expect("send");
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);

    for screen in [office, till_screen] {
        screen.close().await;
    }
    for node in [a, hq] {
        assert!(node.terminate().success());
    }
}
