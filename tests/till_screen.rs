//! The till screen in real Chromium: two tills of a shop as real processes, each with its till
//! screen open, and till B's kitchen display. An order is taken by clicking and typing on till
//! A's screen (a field error first, then two items, one weighed, a quantity changed, a line
//! voided, a note) and sent to the kitchen; it appears on B's open orders and on the kitchen display without a reload. Bumping
//! it on the kitchen display moves it on both tills' screens; a card payment taken on A shows
//! "awaiting HQ" there and as paid on B. Screenshots go to `target/screens/till.png` (till A)
//! and `target/screens/till-b.png`. Prints SKIPPED without Chromium (`.ci/run` installs it).

mod support;

use support::browser::{Browser, screens_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_taken_on_one_tills_screen_is_followed_live_on_the_other_and_in_the_kitchen() {
    let Some(screen_a) = Browser::start().await else {
        println!("SKIPPED: till screen in Chromium (install chromium and chromium-driver)");
        return;
    };
    let screen_b = Browser::start().await.expect("a second Chromium");
    let kitchen = Browser::start().await.expect("a third Chromium");
    let dir = tempfile::tempdir().expect("tempdir");
    support::shop(dir.path(), &["A", "B"]);
    let a = support::start_shop_till(dir.path(), "A", 300, &[]);
    let b = support::start_shop_till(dir.path(), "B", 300, &[a.peer.as_deref().expect("A listens")]);

    screen_a.open(&format!("{}/", a.url)).await;
    screen_b.open(&format!("{}/", b.url)).await;
    kitchen.open(&format!("{}/kitchen", b.url)).await;
    for screen in [&screen_a, &screen_b, &kitchen] {
        screen.find("#link.live").await;
    }
    assert_eq!(screen_a.text("#till").await, "Till A");
    // The sync indicator names the admitted peer once A and B have met.
    screen_a.find("#sync[data-peers='1']").await;
    assert!(screen_a.text("#sync").await.contains("till-B"), "A's sync indicator names B");

    // Bad input: the API's own message, next to the field it is about.
    screen_a.fill("#add-item [name=name]", "Tomato soup").await;
    screen_a.fill("#add-item [name=sku]", "SOUP").await;
    screen_a.fill("#add-item [name=unitPrice]", "abc").await;
    screen_a.click("#add-item button[type=submit]").await;
    screen_a.find("#add-item [name=unitPrice][aria-invalid='true']").await;
    let error = screen_a.text("#error-unitPrice").await;
    assert!(error.contains("\"abc\" is not a decimal amount"), "the price's error: {error:?}");
    screen_a.fill("#add-item [name=unitPrice]", "4.50").await;
    screen_a.fill("#add-item [name=quantity]", "0").await;
    screen_a.click("#add-item button[type=submit]").await;
    screen_a.find("#add-item [name=quantity][aria-invalid='true']").await;
    let error = screen_a.text("#error-quantity").await;
    assert!(error.contains("quantity"), "the quantity's error: {error:?}");
    assert_eq!(screen_a.text("#error-unitPrice").await, "", "the fixed price's error is gone");

    // Two items, one weighed; the ticket shows the API's totals.
    screen_a.fill("#add-item [name=quantity]", "2").await;
    screen_a.click("#add-item button[type=submit]").await;
    screen_a.find("#items tr:nth-child(1)").await;
    screen_a.fill("#add-item [name=name]", "Comté").await;
    screen_a.fill("#add-item [name=sku]", "CHEESE").await;
    screen_a.fill("#add-item [name=quantity]", "0.35").await;
    screen_a.fill("#add-item [name=unitPrice]", "24.90").await;
    screen_a.click("#add-item button[type=submit]").await;
    screen_a.find("#items tr:nth-child(2)").await;
    assert!(
        screen_a.text("#items tr:nth-child(2)").await.contains("$8.72"),
        "0.35 × 24.90, priced by the API"
    );
    // A line's quantity changed, a line typed in without a SKU and voided.
    screen_a.fill("#items tr:nth-child(1) [name=quantity]", "3").await;
    screen_a.click("#items tr:nth-child(1) form button").await;
    screen_a.text_containing("#items tr:nth-child(1)", "$13.50").await;
    screen_a.fill("#add-item [name=name]", "Bread").await;
    screen_a.fill("#add-item [name=unitPrice]", "2.25").await;
    screen_a.click("#add-item button[type=submit]").await;
    screen_a.text_containing("#items tr:nth-child(3)", "OPEN-ITEM").await;
    screen_a.click("#items tr:nth-child(3) button.void").await;
    screen_a.find("#items tr.voided").await;
    screen_a.text_containing("#total", "$24.05").await;
    screen_a.fill("#notes", "no croutons").await;
    screen_a.click("#notes-form button").await;
    let http = reqwest::Client::new();
    let ids = support::order_ids(&http, &a.url).await;
    let [id] = ids.as_slice() else { panic!("one order on A: {ids:?}") };
    let number = screen_a.text("#ticket-title").await.trim_start_matches("Order ").to_string();
    screen_a.click("#send").await;
    screen_a.find("#ticket-status.SENT").await;

    // Till B's screen and B's kitchen display follow without a reload.
    let on_b = format!("#orders li[data-order-id='{id}']");
    screen_b.find(&format!("{on_b} .status.SENT")).await;
    assert!(screen_b.text(&on_b).await.contains(&number), "B lists {number}");
    let ticket = format!("#SENT article[data-order-id='{id}']");
    let text = kitchen.text(&ticket).await;
    for shown in [number.as_str(), "3 × Tomato soup", "0.35 × Comté", "no croutons", "till-A"] {
        assert!(text.contains(shown), "the kitchen ticket shows {shown:?}: {text:?}");
    }
    assert!(!text.contains("Bread"), "a voided line is not cooked: {text:?}");

    // Bumped in the kitchen: both tills' screens move with it. A's ticket is rendered again
    // while its cashier is typing a card's last digits: what was typed stays.
    screen_a.fill("#card-last4", "4242").await;
    kitchen.click(&format!("{ticket} button.bump")).await;
    kitchen.find(&format!("#READY article[data-order-id='{id}']")).await;
    screen_a.find("#ticket-status.READY").await;
    assert_eq!(screen_a.value("#card-last4").await, "4242", "typed digits survive the redraw");
    screen_a.find(&format!("#orders li[data-order-id='{id}'] .status.READY")).await;
    screen_b.find(&format!("{on_b} .status.READY")).await;

    // A card payment on A is a claim: awaiting HQ until HQ settles it.
    screen_a.click("#pay-card").await;
    screen_a.find("#payment.awaiting").await;
    assert_eq!(screen_a.text("#payment").await, "Card — awaiting HQ");
    screen_b.find(&format!("{on_b} .paid")).await;
    screen_b.click(&format!("{on_b} button")).await;
    screen_b.find("#payment.awaiting").await;
    let detail = support::get_json(&http, &format!("{}/api/orders/{id}", a.url)).await;
    let card = detail["transactions"].as_array().and_then(|list| list.first()).cloned().unwrap_or_default();
    assert_eq!(card["cardLast4"], "4242", "the digits typed before the redraw were sent: {detail}");
    screen_a.screenshot(&screens_dir().join("till.png")).await;
    screen_b.screenshot(&screens_dir().join("till-b.png")).await;

    // A new ticket on A: empty, and its first item makes a second order (not a line of the first).
    screen_a.click("#new-order").await;
    screen_a.text_containing("#ticket-title", "New order").await;
    screen_a.gone("#items tr").await;
    screen_a.fill("#add-item [name=name]", "Espresso").await;
    screen_a.fill("#add-item [name=unitPrice]", "2.50").await;
    screen_a.click("#add-item button[type=submit]").await;
    screen_a.text_containing("#items tr:nth-child(1)", "Espresso").await;
    let ids = support::order_ids(&http, &a.url).await;
    assert_eq!(ids.len(), 2, "two orders on A: {ids:?}");
    assert_ne!(screen_a.text("#ticket-title").await, format!("Order {number}"));

    for screen in [screen_a, screen_b, kitchen] {
        screen.close().await;
    }
    for till in [a, b] {
        assert!(till.terminate().success());
    }
}
