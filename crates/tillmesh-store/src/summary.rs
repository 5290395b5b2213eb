//! Order summaries: what a list shows, kept per order so listing never loads documents.

use serde::{Deserialize, Serialize};
use tillmesh_core::{
    Amount, Currency, Document, HqPublicKey, OrderStatus, PaymentMethod, PaymentStatus, Timestamp, View,
};
use tillmesh_sync::ItemHash;
use uuid::Uuid;

use crate::{StoreError, keys};

/// Most rows one page may hold.
pub const PAGE_ROWS_MAX: usize = 500;

/// One row of the order list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderSummary {
    /// The order's id.
    pub id: Uuid,
    /// `<till code>-<sequence>`.
    pub order_number: String,
    /// The most advanced status reached.
    pub order_status: OrderStatus,
    /// Effective payment status.
    pub payment_status: PaymentStatus,
    /// Whether HQ's signed settlement stands behind it.
    pub payment_confirmed: bool,
    /// How the till says it was paid (none before a payment; none in summaries kept before this
    /// field existed, until the order changes).
    #[serde(default)]
    pub payment_method: Option<PaymentMethod>,
    /// Order total.
    pub total: Amount,
    /// Currency of the total.
    pub currency: Currency,
    /// Items not voided.
    pub item_count: usize,
    /// The device that took the order.
    pub device_id: String,
    /// When the order was taken.
    pub created_at: Timestamp,
    /// The latest edit.
    pub updated_at: Timestamp,
}

/// Which orders to list.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery {
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// Only orders updated at or after this time.
    pub since: Option<Timestamp>,
    /// Rows per page (1 to [`PAGE_ROWS_MAX`]; 0 means 50).
    pub limit: usize,
    /// Where the previous page ended.
    pub cursor: Option<String>,
}

/// One page of orders, most recently updated first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    /// The rows.
    pub orders: Vec<OrderSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A document made ready for writing ([`crate::Store::prepare`]): its bytes and what the indexes
/// need, computed once.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub(crate) id: Uuid,
    pub(crate) item_hash: ItemHash,
    /// The `localId` to index; none for the menu.
    pub(crate) local_id: Option<Uuid>,
    pub(crate) bytes: Vec<u8>,
    /// The bytes as stored: packed ([`tillmesh_untrusted::packed`]), or as they are should
    /// packing fail.
    pub(crate) packed: Vec<u8>,
    pub(crate) order: Option<OrderSummary>,
    /// For a transaction: the order it pays.
    pub(crate) paid_order: Option<Uuid>,
}

/// An Automerge document a peer sent, as a tillmesh document: its header checked.
fn tillmesh_document(doc: automerge::AutoCommit) -> Result<Document, String> {
    Document::from_automerge(doc).map_err(|error| format!("not a tillmesh document: {error}"))
}

impl Prepared {
    /// The document's id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The saved bytes that will be written.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The document's item hash (for the sync index).
    pub fn item_hash(&self) -> ItemHash {
        self.item_hash
    }

    pub(crate) fn of(
        document: &mut Document,
        saved: Option<Vec<u8>>,
        hq: Option<&HqPublicKey>,
    ) -> Result<Prepared, StoreError> {
        let id = document.id();
        let view = document.view(hq).map_err(|source| StoreError::Document { id, source })?;
        let bytes = saved.unwrap_or_else(|| document.save());
        Ok(Prepared::viewed(document, bytes, &view))
    }

    /// A document a peer sent (or that sync brought into being), checked as every node checks
    /// one before keeping it: a tillmesh document of a known schema, sent under its own id, whose
    /// view computes (honouring HQ's key, when given). Refused with the reason otherwise.
    pub fn received(
        id: Uuid,
        doc: automerge::AutoCommit,
        saved: Option<Vec<u8>>,
        hq: Option<&HqPublicKey>,
    ) -> Result<(Document, Prepared), String> {
        let document = tillmesh_document(doc)?;
        if document.id() != id {
            return Err(format!("document {} sent as {id}", document.id()));
        }
        Prepared::checked(document, saved, hq)
    }

    /// A whole document a peer sent without its id (in a compact frame), checked as
    /// [`Prepared::received`] checks one, under the id its header gives.
    pub fn received_unnamed(
        doc: automerge::AutoCommit,
        saved: Option<Vec<u8>>,
        hq: Option<&HqPublicKey>,
    ) -> Result<(Document, Prepared), String> {
        Prepared::checked(tillmesh_document(doc)?, saved, hq)
    }

    /// A received document whose header was checked: its view must compute.
    fn checked(
        mut document: Document,
        saved: Option<Vec<u8>>,
        hq: Option<&HqPublicKey>,
    ) -> Result<(Document, Prepared), String> {
        let prepared = Prepared::of(&mut document, saved, hq).map_err(|error| match error {
            StoreError::Document { source, .. } => format!("unreadable document: {source}"),
            other => other.to_string(),
        })?;
        Ok((document, prepared))
    }

    /// From a document's saved bytes and its view (computed with the store's HQ key).
    pub(crate) fn viewed(document: &mut Document, bytes: Vec<u8>, view: &View) -> Prepared {
        let id = document.id();
        let item_hash = ItemHash::of(id, &document.heads());
        let packed = tillmesh_untrusted::packed::pack(&bytes).unwrap_or_else(|_| bytes.clone());
        match view {
            View::Order(view) => Prepared {
                id,
                item_hash,
                local_id: Some(view.local_id),
                bytes,
                packed,
                paid_order: None,
                order: Some(OrderSummary {
                    id,
                    order_number: view.order_number.clone(),
                    order_status: view.status,
                    payment_status: view.payment.status,
                    payment_confirmed: view.payment.confirmed,
                    payment_method: view.payment.method,
                    total: view.total,
                    currency: view.currency,
                    item_count: view.items.iter().filter(|item| !item.voided).count(),
                    device_id: view.device_id.clone(),
                    created_at: view.created_at,
                    updated_at: view.updated_at,
                }),
            },
            View::Transaction(view) => Prepared {
                id,
                item_hash,
                local_id: Some(view.local_id),
                bytes,
                packed,
                order: None,
                paid_order: Some(view.order_id),
            },
            View::Menu(_) => {
                Prepared { id, item_hash, local_id: None, bytes, packed, order: None, paid_order: None }
            }
        }
    }
}

/// The first byte of a summary as stored: the format that follows ([`encode`]). A summary kept
/// as JSON (before `0003-compact-summaries`) begins with `{`.
const STORED_FORMAT: u8 = 1;

/// An order summary as stored under its order's id (which it leaves out): statuses, method and
/// currency by their names, money in cents, times in ms, in postcard's format (varints,
/// strings with their lengths). Under a quarter of the JSON it replaced.
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    order_number: &'a str,
    order_status: &'a str,
    payment_status: &'a str,
    payment_confirmed: bool,
    payment_method: Option<&'a str>,
    total_minor: i64,
    currency: &'a str,
    item_count: u64,
    device_id: &'a str,
    created_at: i64,
    updated_at: i64,
}

/// `summary` as the store keeps it.
pub(crate) fn encode(summary: &OrderSummary) -> Result<Vec<u8>, StoreError> {
    let stored = Stored {
        order_number: &summary.order_number,
        order_status: summary.order_status.as_str(),
        payment_status: summary.payment_status.as_str(),
        payment_confirmed: summary.payment_confirmed,
        payment_method: summary.payment_method.map(PaymentMethod::as_str),
        total_minor: summary.total.minor(),
        currency: summary.currency.as_str(),
        item_count: summary.item_count as u64,
        device_id: &summary.device_id,
        created_at: summary.created_at.0,
        updated_at: summary.updated_at.0,
    };
    let mut bytes = vec![STORED_FORMAT];
    bytes.extend(postcard::to_allocvec(&stored).map_err(|_| StoreError::Corrupt { what: "summary" })?);
    Ok(bytes)
}

/// The summary of order `id` kept as `bytes` ([`encode`], or JSON as kept before).
pub(crate) fn decode(id: Uuid, bytes: &[u8]) -> Result<OrderSummary, StoreError> {
    let corrupt = || StoreError::Corrupt { what: "summary" };
    match bytes.split_first() {
        Some((&STORED_FORMAT, rest)) => {
            let stored: Stored<'_> = postcard::from_bytes(rest).map_err(|_| corrupt())?;
            Ok(OrderSummary {
                id,
                order_number: stored.order_number.to_string(),
                order_status: stored.order_status.parse().map_err(|_| corrupt())?,
                payment_status: stored.payment_status.parse().map_err(|_| corrupt())?,
                payment_confirmed: stored.payment_confirmed,
                payment_method: stored.payment_method.map(str::parse).transpose().map_err(|_| corrupt())?,
                total: Amount::from_minor(stored.total_minor),
                currency: Currency::parse(stored.currency).map_err(|_| corrupt())?,
                item_count: usize::try_from(stored.item_count).map_err(|_| corrupt())?,
                device_id: stored.device_id.to_string(),
                created_at: Timestamp(stored.created_at),
                updated_at: Timestamp(stored.updated_at),
            })
        }
        Some((b'{', _)) => serde_json::from_slice(bytes).map_err(|_| corrupt()),
        _ => Err(corrupt()),
    }
}

/// Whether `bytes` are a summary kept as [`encode`] keeps it (not yet as JSON).
pub(crate) fn is_encoded(bytes: &[u8]) -> bool {
    bytes.first() == Some(&STORED_FORMAT)
}

pub(crate) fn get(summaries: &sled::Tree, id: Uuid) -> Result<Option<OrderSummary>, StoreError> {
    summaries.get(id.as_bytes())?.map(|bytes| decode(id, &bytes)).transpose()
}

pub(crate) fn list(
    summaries: &sled::Tree,
    by_updated: &sled::Tree,
    by_status: &sled::Tree,
    query: &OrderQuery,
) -> Result<OrderPage, StoreError> {
    let limit = match query.limit {
        0 => 50,
        n => n.min(PAGE_ROWS_MAX),
    };
    // Keys of the chosen index, below the cursor, newest first. A status index key is the
    // status tag followed by an `updated` key.
    let (index, prefix): (&sled::Tree, Vec<u8>) = match query.status {
        Some(status) => (by_status, vec![keys::status_tag(status)]),
        None => (by_updated, Vec::new()),
    };
    let upper = match &query.cursor {
        Some(cursor) => {
            let key = decode_cursor(cursor)?;
            if !key.starts_with(&prefix) {
                return Err(StoreError::Cursor);
            }
            key
        }
        None => {
            let mut end = prefix.clone();
            end.extend_from_slice(&[0xff; 25]);
            end
        }
    };
    let mut orders = Vec::with_capacity(limit);
    let mut last_key = None;
    for entry in index.range(prefix.clone()..upper).rev() {
        let (key, _) = entry?;
        let inner = &key[prefix.len()..];
        let updated_at = keys::updated_at_of(inner).ok_or(StoreError::Corrupt { what: "order index" })?;
        if query.since.is_some_and(|since| updated_at < since.0) {
            break;
        }
        let id = keys::id_of_updated(inner).ok_or(StoreError::Corrupt { what: "order index" })?;
        let summary = get(summaries, id)?.ok_or(StoreError::Corrupt { what: "order index" })?;
        orders.push(summary);
        last_key = Some(key);
        if orders.len() == limit {
            break;
        }
    }
    let next_cursor = match last_key {
        Some(key) if orders.len() == limit => Some(encode_cursor(&key)),
        _ => None,
    };
    Ok(OrderPage { orders, next_cursor })
}

fn encode_cursor(key: &[u8]) -> String {
    hex::encode(key)
}

fn decode_cursor(cursor: &str) -> Result<Vec<u8>, StoreError> {
    if cursor.len() > 80 {
        return Err(StoreError::Cursor);
    }
    hex::decode(cursor).map_err(|_| StoreError::Cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(method: Option<PaymentMethod>, confirmed: bool) -> OrderSummary {
        OrderSummary {
            id: Uuid::from_u128(0x1234_5678_9abc),
            order_number: "ORD-20250115-0001".into(),
            order_status: OrderStatus::Served,
            payment_status: PaymentStatus::Paid,
            payment_confirmed: confirmed,
            payment_method: method,
            total: Amount::from_minor(-1_234_567),
            currency: Currency::parse("EUR").expect("EUR"),
            item_count: 300,
            device_id: "pos-terminal-07".into(),
            created_at: Timestamp(1_764_900_000_123),
            updated_at: Timestamp(-5),
        }
    }

    #[test]
    fn a_summary_reads_back_as_kept_in_under_a_quarter_of_its_json() {
        for (method, confirmed) in
            [(None, false), (Some(PaymentMethod::Card), true), (Some(PaymentMethod::Cash), false)]
        {
            let summary = summary(method, confirmed);
            let stored = encode(&summary).expect("encodes");
            assert!(is_encoded(&stored));
            assert_eq!(decode(summary.id, &stored).expect("decodes"), summary);
            let json = serde_json::to_vec(&summary).expect("JSON");
            assert!(stored.len() * 4 < json.len(), "{} bytes against {} as JSON", stored.len(), json.len());
            // A summary kept as JSON (before 0003) still reads.
            assert!(!is_encoded(&json));
            assert_eq!(decode(summary.id, &json).expect("decodes"), summary);
        }
    }

    #[test]
    fn a_damaged_summary_is_reported_not_misread() {
        let stored = encode(&summary(Some(PaymentMethod::Card), true)).expect("encodes");
        let id = Uuid::from_u128(1);
        for cut in 0..stored.len() {
            assert!(
                matches!(decode(id, &stored[..cut]), Err(StoreError::Corrupt { what: "summary" })),
                "cut at {cut}"
            );
        }
        let mut other_format = stored.clone();
        other_format[0] = 2;
        assert!(matches!(decode(id, &other_format), Err(StoreError::Corrupt { .. })));
        let unknown_status = encode(&summary(None, false)).expect("encodes");
        // The order status's name replaced by one no status has.
        let at = unknown_status.windows(6).position(|window| window == b"SERVED").expect("status");
        let mut renamed = unknown_status.clone();
        renamed[at..at + 6].copy_from_slice(b"SERVEX");
        assert!(matches!(decode(id, &renamed), Err(StoreError::Corrupt { .. })));
    }
}
