//! `GET /api/changes`: the node's change stream, as server-sent events, for front-ends that show
//! orders live (a till's open orders, a kitchen display) without polling.
//!
//! The stream starts with `event: ready` once subscribed; from then on every document the node
//! writes is one event: a local edit once durable, a document from a peer as soon as it is
//! stored and readable (its sender holds it durably; this node's own fsync follows):
//! `event: order` with the order's summary (as `GET /api/orders` lists it) as `data` and its id
//! as the event `id`, `event: menu` with `{"id": …}` when the shop's menu changed (read it again
//! from `GET /api/menu`), or `event: document` with `{"id": …}` for a payment transaction. A
//! subscriber that falls more than the stream's buffer behind gets `event: resync` with the
//! number of events missed and should list again (and read the menu again). `event: sync`
//! (`data: {}`) says that the sync status (`GET /api/sync/status`) moved without a document being
//! written: a peer was admitted or went away, or documents were marked synced with a peer. The
//! stream ends when the node stops serving.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use uuid::Uuid;

use crate::Till;

/// How often an idle stream sends a comment, so that proxies and clients keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(5);

pub(super) async fn changes(State(till): State<Till>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let visible = till.subscribe_visible();
    let ended = Box::pin(till.streams_ended());
    let sync = till.sync_control().map(|control| {
        let mut peers = control.peers.clone();
        peers.borrow_and_update();
        SyncMoves { peers, marked: control.stats.marked_synced.subscribe() }
    });
    let ready = futures_util::stream::once(async { Ok(Event::default().event("ready").data("{}")) });
    let events = futures_util::stream::unfold(
        (till, visible, ended, sync),
        |(till, mut visible, mut ended, mut sync)| async move {
            let event = tokio::select! {
                () = &mut ended => return None,
                received = visible.recv() => match received {
                    Ok(id) => change(&till, id),
                    Err(RecvError::Lagged(missed)) => {
                        Event::default().event("resync").data(format!("{{\"missed\":{missed}}}"))
                    }
                    Err(RecvError::Closed) => return None,
                },
                () = SyncMoves::next(&mut sync) => Event::default().event("sync").data("{}"),
            };
            Some((Ok(event), (till, visible, ended, sync)))
        },
    );
    Sse::new(futures_util::StreamExt::chain(ready, events)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// What moves the sync status of a node with a sync driver.
struct SyncMoves {
    peers: watch::Receiver<Vec<String>>,
    marked: watch::Receiver<u64>,
}

impl SyncMoves {
    /// Resolves when the admitted peers change or documents are marked synced; never for a
    /// standalone node, nor once the driver has gone.
    async fn next(moves: &mut Option<SyncMoves>) {
        let Some(moves) = moves else { return std::future::pending().await };
        let moved = tokio::select! {
            changed = moves.peers.changed() => changed,
            changed = moves.marked.changed() => changed,
        };
        if moved.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The event for a document written: an order's summary, the menu's id, else its id.
fn change(till: &Till, id: Uuid) -> Event {
    if till.menu_id() == Some(id) {
        return Event::default().id(id.to_string()).event("menu").data(format!("{{\"id\":\"{id}\"}}"));
    }
    let summary = till.store().order_summary(id).unwrap_or_else(|error| {
        tracing::debug!(%id, %error, "no summary for a change event");
        None
    });
    let event = Event::default().id(id.to_string());
    match summary.map(|summary| event.clone().event("order").json_data(summary)) {
        Some(Ok(order)) => order,
        _ => event.event("document").data(format!("{{\"id\":\"{id}\"}}")),
    }
}
