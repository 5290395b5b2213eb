//! The menu on a till's screen in real Chromium: HQ and a till as real processes. The screen
//! opens with no menu (free-form items only); the menu imported on HQ appears as buttons by
//! category without a reload, an item off sale disabled; a tap adds the item at its price; a
//! price HQ changes shows on the buttons at once and applies to the next tap only, the order
//! keeping the price it was sold at. Screenshot: `target/screens/till-menu.png`. Prints SKIPPED
//! without Chromium.

mod support;

use std::time::Duration;

use serde_json::json;
use support::browser::{Browser, screens_dir};
use support::cli;

const MENU_CSV: &str = "sku,name,category,price,tax_class,available\n\
                        SOUP,Tomato soup,Soups,4.50,reduced,true\n\
                        TEA,Green tea,Drinks,2.00,standard,true\n\
                        CAKE,Cheesecake,Desserts,3.00,standard,false\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_menu_appears_on_the_till_screen_and_sells_at_the_price_of_the_moment() {
    let Some(screen) = Browser::start().await else {
        println!("SKIPPED: the menu on the till screen in Chromium (install chromium and chromium-driver)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    support::shop(dir, &["A"]);
    let shop_dir = dir.join("shop");
    let (hq, _) = support::start_shop_hq(dir, 300);
    let token_file = dir.join("data-hq").join("admin-token");
    let a = support::start_shop_till(dir, "A", 300, &[hq.peer.as_deref().expect("HQ listens")]);

    screen.open(&format!("{}/", a.url)).await;
    screen.find("#link.live").await;
    screen.find("#menu[hidden]").await;

    let menu = dir.join("menu.csv");
    std::fs::write(&menu, MENU_CSV).expect("write");
    let (ok, out, err) = cli(&[
        "menu",
        "import",
        "--shop",
        shop_dir.to_str().expect("utf-8"),
        menu.to_str().expect("utf-8"),
        "--hq",
        &hq.url,
        "--admin-token-file",
        token_file.to_str().expect("utf-8"),
    ]);
    assert!(ok, "{out}{err}");

    // Without a reload: buttons by category, the item off sale disabled.
    screen.text_containing("#menu button[data-sku='SOUP']", "$4.50").await;
    screen.find("#menu button[data-sku='CAKE'][disabled]").await;
    let categories = screen.text("#menu-categories").await;
    for shown in ["Soups", "Drinks", "Desserts", "Green tea", "unavailable"] {
        assert!(categories.contains(shown), "the menu shows {shown:?}: {categories:?}");
    }

    screen.click("#menu button[data-sku='SOUP']").await;
    screen.text_containing("#items tr:nth-child(1)", "$4.50").await;
    assert!(screen.text("#items tr:nth-child(1)").await.contains("SOUP"), "the line keeps the SKU");

    // HQ raises the soup: the button follows; the line sold before keeps its price.
    let admin_token = std::fs::read_to_string(&token_file).expect("admin token");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let raised = http
        .patch(format!("{}/api/menu/items/SOUP", hq.url))
        .bearer_auth(admin_token.trim())
        .json(&json!({ "price": "5.00" }))
        .send()
        .await
        .expect("send");
    assert!(raised.status().is_success(), "{}", raised.status());
    screen.text_containing("#menu button[data-sku='SOUP']", "$5.00").await;
    screen.click("#menu button[data-sku='SOUP']").await;
    screen.text_containing("#items tr:nth-child(2)", "$5.00").await;
    assert!(screen.text("#items tr:nth-child(1)").await.contains("$4.50"), "sold at the old price");
    screen.text_containing("#subtotal", "$9.50").await;
    screen.screenshot(&screens_dir().join("till-menu.png")).await;

    screen.close().await;
    for node in [a, hq] {
        assert!(node.terminate().success());
    }
}
