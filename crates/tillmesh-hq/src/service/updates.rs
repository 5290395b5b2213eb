//! `updates`: what other devices changed, page by page from the change feed.

use std::sync::atomic::Ordering;

use tillmesh_core::legacy::{Since, UpdatesResponse};

use super::feed::{FeedCursor, Listed};
use super::{LegacyService, UPDATES_PAGE_MAX};
use crate::error::HqError;
use crate::records::RecordStore;

impl<S: RecordStore> LegacyService<S> {
    /// `GET /api/sync/updates`: what other devices (tills, HQ, other legacy clients) changed
    /// since `since`. After a `nextSyncToken` (or none), at most [`UPDATES_PAGE_MAX`] records
    /// and `hasMore`; after a time (the seed's `since`, from clients that never page), every
    /// change up to the end of the feed when called, whatever the count (`GET` streams that
    /// answer instead, [`LegacyService::feed_page`]); `nextSyncToken` continues exactly.
    pub async fn updates(&self, device: &str, since: Option<Since>) -> Result<UpdatesResponse, HqError> {
        self.stats.update_calls.fetch_add(1, Ordering::Relaxed);
        let since = since.unwrap_or(Since::Token(0));
        // Read before the pages: a record committed after it has a later position.
        let end = self.records.last_position().await?;
        if let Since::Token(position) = since
            && position > end
        {
            return Err(HqError::BadRequest {
                error: "invalid_token",
                detail: format!(
                    "sync token {} is past the end of HQ's change feed; the current token is {}: go on \
                     from it, or from 0 for everything",
                    Since::token(position),
                    Since::token(end)
                ),
            });
        }
        let complete = matches!(since, Since::Time(_));
        let mut cursor = FeedCursor::new(since, if complete { end } else { u64::MAX });
        let mut answer = UpdatesResponse {
            orders: Vec::new(),
            transactions: Vec::new(),
            deleted_order_ids: Vec::new(),
            deleted_transaction_ids: Vec::new(),
            next_sync_token: String::new(),
            has_more: false,
        };
        while let Some(page) = self.feed_page(device, &mut cursor).await? {
            for listed in page {
                match listed {
                    Listed::Order(order) => answer.orders.push(order),
                    Listed::Transaction(transaction) => answer.transactions.push(transaction),
                    Listed::DeletedOrder(id) => answer.deleted_order_ids.push(id),
                    Listed::DeletedTransaction(id) => answer.deleted_transaction_ids.push(id),
                }
            }
            if !complete {
                break;
            }
        }
        answer.has_more = !cursor.done;
        answer.next_sync_token = Since::token(cursor.position().unwrap_or(end));
        Ok(answer)
    }

    /// The next page of a pass over the change feed: at most [`UPDATES_PAGE_MAX`] records up to
    /// the cursor's end, as `updates` lists them for `device` (never its own writes); `None`
    /// once the pass is done.
    pub async fn feed_page(
        &self,
        device: &str,
        cursor: &mut FeedCursor,
    ) -> Result<Option<Vec<Listed>>, HqError> {
        if cursor.done {
            return Ok(None);
        }
        let page = self.records.changes(cursor.after, UPDATES_PAGE_MAX).await?;
        cursor.done = page.len() < UPDATES_PAGE_MAX;
        let mut listed = Vec::with_capacity(page.len());
        for record in page {
            if record.position > cursor.end {
                cursor.done = true;
                break;
            }
            cursor.after = Since::Token(record.position);
            if record.written_by != device {
                listed.push(Listed::of(record));
            }
        }
        Ok(Some(listed))
    }
}
