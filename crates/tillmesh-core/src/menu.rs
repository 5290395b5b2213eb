//! The shop's menu: what the tills sell, one Automerge document per shop, made once on HQ.
//!
//! Its id derives from HQ's public key ([`MenuDoc::id_for`]), so every node finds "the menu"
//! without searching, and HQ makes it once however often it restarts. Items are keyed by SKU:
//! - `items` maps a SKU to its `name`, `category` and `taxClass` (written by HQ, last writer
//!   wins per field);
//! - `offers` is an append-only list of HQ-signed entries, each a SKU's price and whether it is
//!   available, with HQ's count for that SKU (`seq`) and when HQ decided. The price and
//!   availability of a SKU are those of HQ's valid entry with the highest `seq`.
//!
//! As with settlements ([`crate::authority`]), Automerge has no per-key access control: an
//! offer that does not verify with HQ's key (a till's edit, a tampered entry) is ignored by
//! every view and reported as an [`AuthorityViolation`] naming the actor that wrote it. A SKU
//! without a valid offer is not for sale.

use std::collections::{BTreeMap, BTreeSet};

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ObjId};
use autosurgeon::{Hydrate, Reconcile};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::authority::{AuthorityViolation, HqPublicKey, HqSigningKey, list_entries};
use crate::base::{self, BaseDoc};
use crate::edit::{EditError, MenuItemRefused, check_device_id, limits};
use crate::kind::{DocKind, DocumentError, SCHEMA_VERSION};
use crate::money::{Amount, Currency, MoneyError};
use crate::text::TextRule;
use crate::time::Timestamp;

/// Domain separation for menu offers: never valid as any other signed message.
const OFFER_CONTEXT: &[u8] = b"tillmesh/menu-offer/v1\0";

/// The namespace of menu ids (UUID v5 of HQ's public key).
const MENU_NAMESPACE: Uuid = Uuid::from_u128(0x4d3e_9b1c_77a0_4f25_b6c8_1e0d_95a3_6c21);

/// One item as HQ writes it onto the menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewMenuItem {
    /// Product code: what an order line made from the menu carries.
    pub sku: String,
    /// Product name.
    pub name: String,
    /// Where the till screen shows it.
    pub category: String,
    /// The shop's tax class code.
    pub tax_class: String,
    /// Price of one, zero to [`limits::UNIT_PRICE_MAX`].
    pub price: Amount,
    /// Whether it can be sold now.
    pub available: bool,
}

impl NewMenuItem {
    /// Checks the item against the menu's limits (as HQ does before writing it).
    pub fn check(&self) -> Result<(), MenuItemProblem> {
        let text = |rule: TextRule, value: &str| {
            rule.check(value)
                .map_err(|error| MenuItemProblem { field: rule.field, problem: error.to_string() })
        };
        text(limits::MENU_SKU, &self.sku)?;
        text(limits::MENU_NAME, &self.name)?;
        text(limits::MENU_CATEGORY, &self.category)?;
        text(limits::MENU_TAX_CLASS, &self.tax_class)?;
        let price_problem = |problem: String| MenuItemProblem { field: "price", problem };
        let price = self.price.non_negative().map_err(|error| price_problem(format!("price: {error}")))?;
        if price > limits::UNIT_PRICE_MAX {
            let most = limits::UNIT_PRICE_MAX;
            return Err(price_problem(format!("price: {price} is above the most an item may cost, {most}")));
        }
        Ok(())
    }
}

/// What is wrong with one menu item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct MenuItemProblem {
    /// The field, as the API spells it (`sku`, `name`, `category`, `taxClass`, `price`).
    pub field: &'static str,
    /// What is wrong, naming the field.
    pub problem: String,
}

/// A change to one menu item; what is absent stays.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MenuItemPatch {
    /// A new name.
    #[serde(default)]
    pub name: Option<String>,
    /// A new category.
    #[serde(default)]
    pub category: Option<String>,
    /// A new tax class.
    #[serde(default)]
    pub tax_class: Option<String>,
    /// A new price.
    #[serde(default)]
    pub price: Option<Amount>,
    /// Available or not.
    #[serde(default)]
    pub available: Option<bool>,
}

/// The effective menu, as every peer with the same document computes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Menu {
    /// The menu's id.
    pub id: Uuid,
    /// The currency of its prices.
    pub currency: Currency,
    /// Every item, by category, name and SKU.
    pub items: Vec<MenuItem>,
    /// The latest edit's time.
    pub updated_at: Timestamp,
    /// Offers that are ignored (not signed by HQ).
    pub violations: Vec<AuthorityViolation>,
}

/// One item of the effective menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MenuItem {
    /// Product code.
    pub sku: String,
    /// Product name (the SKU when HQ gave none).
    pub name: String,
    /// Category (empty when HQ gave none).
    pub category: String,
    /// Tax class (empty when HQ gave none).
    pub tax_class: String,
    /// HQ's price, when HQ signed one.
    pub price: Option<Amount>,
    /// Whether it can be sold: HQ signed a price and marked it available.
    pub available: bool,
}

/// HQ's price and availability of one SKU on one menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The menu.
    pub menu_id: Uuid,
    /// The SKU.
    pub sku: String,
    /// Price of one.
    pub price: Amount,
    /// Whether it can be sold.
    pub available: bool,
    /// HQ's count of offers for this SKU: the highest valid one is in force.
    pub seq: u64,
    /// When HQ decided.
    pub at: Timestamp,
}

impl Offer {
    /// The exact bytes HQ signs.
    fn signed_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(OFFER_CONTEXT.len() + 16 + 4 + self.sku.len() + 25);
        bytes.extend_from_slice(OFFER_CONTEXT);
        bytes.extend_from_slice(self.menu_id.as_bytes());
        bytes.extend_from_slice(&(self.sku.len() as u32).to_be_bytes());
        bytes.extend_from_slice(self.sku.as_bytes());
        bytes.extend_from_slice(&self.price.minor().to_be_bytes());
        bytes.push(u8::from(self.available));
        bytes.extend_from_slice(&self.seq.to_be_bytes());
        bytes.extend_from_slice(&self.at.0.to_be_bytes());
        bytes
    }
}

/// An offer with HQ's signature over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedOffer {
    /// What HQ decided.
    pub offer: Offer,
    /// HQ's ed25519 signature over the offer.
    pub signature: [u8; 64],
}

impl SignedOffer {
    /// Whether HQ's key signed exactly this offer, and it is one HQ would make (a SKU and a
    /// price within the limits).
    pub fn verify(&self, hq: &HqPublicKey) -> bool {
        limits::MENU_SKU.check(&self.offer.sku).is_ok()
            && (Amount::ZERO..=limits::UNIT_PRICE_MAX).contains(&self.offer.price)
            && hq.verify_bytes(&self.offer.signed_bytes(), &self.signature)
    }

    /// What decides between two valid offers for one SKU: the highest `seq`, then the latest,
    /// then the bytes (so every peer picks the same one).
    fn rank(&self) -> (u64, Timestamp, Amount, bool, [u8; 64]) {
        (self.offer.seq, self.offer.at, self.offer.price, self.offer.available, self.signature)
    }
}

impl HqSigningKey {
    /// Signs a menu offer.
    pub fn sign_offer(&self, offer: Offer) -> SignedOffer {
        let signature = self.sign_bytes(&offer.signed_bytes());
        SignedOffer { offer, signature }
    }
}

/// The root of a menu document.
#[derive(Debug, Clone, Reconcile, Hydrate)]
struct MenuRecord {
    schema: u64,
    kind: String,
    id: String,
    currency: String,
    #[autosurgeon(rename = "createdAt")]
    created_at: i64,
    #[autosurgeon(rename = "updatedAt")]
    updated_at: i64,
    items: BTreeMap<String, ItemRecord>,
    /// Written at creation; read entry by entry, never through this record (it hydrates empty).
    #[autosurgeon(hydrate = "base::not_hydrated")]
    offers: Vec<OfferRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate)]
struct ItemRecord {
    name: String,
    category: String,
    #[autosurgeon(rename = "taxClass")]
    tax_class: String,
}

/// One entry of the `offers` list, as HQ writes it.
#[derive(Debug, Clone, PartialEq, Eq, Reconcile, Hydrate)]
struct OfferRecord {
    sku: String,
    price: i64,
    available: bool,
    seq: u64,
    at: i64,
    signature: String,
}

impl OfferRecord {
    fn from_signed(signed: &SignedOffer) -> OfferRecord {
        OfferRecord {
            sku: signed.offer.sku.clone(),
            price: signed.offer.price.minor(),
            available: signed.offer.available,
            seq: signed.offer.seq,
            at: signed.offer.at.0,
            signature: hex::encode(signed.signature),
        }
    }

    fn to_signed(&self, menu_id: Uuid) -> Option<SignedOffer> {
        let mut signature = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut signature).ok()?;
        Some(SignedOffer {
            offer: Offer {
                menu_id,
                sku: self.sku.clone(),
                price: Amount::from_minor(self.price),
                available: self.available,
                seq: self.seq,
                at: Timestamp(self.at),
            },
            signature,
        })
    }
}

/// What a menu document says once resolved: its root, each SKU's offer in force, and what is
/// ignored.
struct Resolved {
    record: MenuRecord,
    offers: BTreeMap<String, SignedOffer>,
    violations: Vec<AuthorityViolation>,
}

/// The shop's menu document.
#[derive(Debug, Clone)]
pub struct MenuDoc {
    base: BaseDoc,
}

document_plumbing!(MenuDoc, DocKind::Menu, "a menu");

impl MenuDoc {
    /// The id of the menu of the shop whose HQ holds `hq`'s key.
    pub fn id_for(hq: &HqPublicKey) -> Uuid {
        Uuid::new_v5(&MENU_NAMESPACE, hq.to_hex().as_bytes())
    }

    /// Creates the shop's menu, empty. Call once, on HQ (the menu's id is HQ's: see
    /// [`MenuDoc::id_for`]); every other peer gets it by sync.
    pub fn create(
        hq: &HqPublicKey,
        currency: Currency,
        by: &str,
        at: Timestamp,
        actor: ActorId,
    ) -> Result<MenuDoc, EditError> {
        check_device_id(by)?;
        let id = MenuDoc::id_for(hq);
        let record = MenuRecord {
            schema: SCHEMA_VERSION,
            kind: DocKind::Menu.as_str().to_string(),
            id: id.to_string(),
            currency: currency.to_string(),
            created_at: at.0,
            updated_at: at.0,
            items: BTreeMap::new(),
            offers: Vec::new(),
        };
        let mut base = BaseDoc::new(id, actor);
        autosurgeon::reconcile(&mut base.doc, &record).map_err(DocumentError::from)?;
        base.commit(by, at);
        Ok(MenuDoc { base })
    }

    /// The effective menu. `hq` verifies offers; without it no item is for sale.
    pub fn view(&self, hq: Option<&HqPublicKey>) -> Result<Menu, DocumentError> {
        let Resolved { record, offers, violations } = self.resolve(hq)?;
        let malformed = |problem: String| DocumentError::Malformed { id: self.base.id.to_string(), problem };
        let currency = Currency::parse(&record.currency).map_err(|error| malformed(error.to_string()))?;
        let skus: BTreeSet<&String> = record.items.keys().chain(offers.keys()).collect();
        let mut items: Vec<MenuItem> = skus
            .into_iter()
            .map(|sku| {
                let described = record.items.get(sku);
                let offer = offers.get(sku).map(|signed| &signed.offer);
                MenuItem {
                    sku: sku.clone(),
                    name: described.map_or_else(|| sku.clone(), |item| item.name.clone()),
                    category: described.map(|item| item.category.clone()).unwrap_or_default(),
                    tax_class: described.map(|item| item.tax_class.clone()).unwrap_or_default(),
                    price: offer.map(|offer| offer.price),
                    available: offer.is_some_and(|offer| offer.available),
                }
            })
            .collect();
        items.sort_by(|a, b| (&a.category, &a.name, &a.sku).cmp(&(&b.category, &b.name, &b.sku)));
        Ok(Menu {
            id: self.base.id,
            currency,
            items,
            updated_at: self.base.updated_at(record.updated_at),
            violations,
        })
    }

    /// HQ writes the whole menu: every item's name, category and tax class, a newly signed
    /// offer for every SKU whose price or availability changes, and a signed "unavailable" for
    /// every SKU on sale that `items` no longer lists (an item never priced simply goes).
    /// Every item is checked first: on any error nothing is written. Returns whether anything
    /// changed (nothing is written when nothing did).
    pub fn replace(
        &mut self,
        hq: &HqSigningKey,
        currency: Option<Currency>,
        items: &[NewMenuItem],
        by: &str,
        at: Timestamp,
    ) -> Result<bool, EditError> {
        if items.len() > limits::MENU_ITEMS_MAX {
            return Err(EditError::TooManyMenuItems { items_max: limits::MENU_ITEMS_MAX, sent: items.len() });
        }
        let mut listed = BTreeSet::new();
        for (index, item) in items.iter().enumerate() {
            let refuse = |problem: String| {
                EditError::MenuItem(Box::new(MenuItemRefused {
                    position: Some(index + 1),
                    sku: item.sku.clone(),
                    problem,
                }))
            };
            item.check().map_err(|problem| refuse(problem.problem))?;
            if !listed.insert(item.sku.as_str()) {
                return Err(refuse("sku: listed twice".into()));
            }
        }
        let resolved = self.resolve(Some(&hq.public_key()))?;
        check_currency(&resolved.record, currency)?;
        let mut changed = false;
        for item in items {
            let described = ItemRecord {
                name: item.name.clone(),
                category: item.category.clone(),
                tax_class: item.tax_class.clone(),
            };
            changed |= self.describe(&resolved, &item.sku, described)?;
            changed |= self.offer(hq, &resolved, &item.sku, item.price, item.available, at)?;
        }
        let gone: Vec<String> = resolved
            .record
            .items
            .keys()
            .chain(resolved.offers.keys())
            .filter(|sku| !listed.contains(sku.as_str()))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for sku in gone {
            match resolved.offers.get(&sku) {
                Some(signed) => {
                    changed |= self.offer(hq, &resolved, &sku, signed.offer.price, false, at)?;
                }
                None => {
                    let items = self.base.child("items")?;
                    self.base.doc.delete(&items, sku.as_str()).map_err(DocumentError::from)?;
                    changed = true;
                }
            }
        }
        if changed {
            self.base.finish(by, at)?;
        }
        Ok(changed)
    }

    /// HQ adds one item (the back office's editor): described and offered as `item` says.
    /// Refused, nothing written, when the SKU is on the menu already or the menu is full.
    pub fn add_item(
        &mut self,
        hq: &HqSigningKey,
        item: &NewMenuItem,
        by: &str,
        at: Timestamp,
    ) -> Result<(), EditError> {
        let refuse = |problem: String| {
            EditError::MenuItem(Box::new(MenuItemRefused { position: None, sku: item.sku.clone(), problem }))
        };
        item.check().map_err(|problem| refuse(problem.problem))?;
        let resolved = self.resolve(Some(&hq.public_key()))?;
        let sku = item.sku.as_str();
        if resolved.record.items.contains_key(sku) || resolved.offers.contains_key(sku) {
            return Err(EditError::SkuTaken { sku: item.sku.clone() });
        }
        let held = resolved.record.items.keys().chain(resolved.offers.keys()).collect::<BTreeSet<_>>().len();
        if held >= limits::MENU_ITEMS_MAX {
            return Err(EditError::TooManyMenuItems { items_max: limits::MENU_ITEMS_MAX, sent: held + 1 });
        }
        let described = ItemRecord {
            name: item.name.clone(),
            category: item.category.clone(),
            tax_class: item.tax_class.clone(),
        };
        self.describe(&resolved, sku, described)?;
        self.offer(hq, &resolved, sku, item.price, item.available, at)?;
        self.base.finish(by, at)?;
        Ok(())
    }

    /// HQ changes one item (the back office's editor): what `patch` gives, the rest as it is.
    /// A price or availability change is a newly signed offer. Returns whether anything changed.
    pub fn update_item(
        &mut self,
        hq: &HqSigningKey,
        sku: &str,
        patch: &MenuItemPatch,
        by: &str,
        at: Timestamp,
    ) -> Result<bool, EditError> {
        let resolved = self.resolve(Some(&hq.public_key()))?;
        let described = resolved.record.items.get(sku);
        let offer = resolved.offers.get(sku).map(|signed| &signed.offer);
        if described.is_none() && offer.is_none() {
            return Err(EditError::UnknownSku { sku: sku.to_string() });
        }
        let refuse = |problem: String| {
            EditError::MenuItem(Box::new(MenuItemRefused { position: None, sku: sku.to_string(), problem }))
        };
        let item = NewMenuItem {
            sku: sku.to_string(),
            name: patch
                .name
                .clone()
                .or_else(|| described.map(|item| item.name.clone()))
                .unwrap_or_else(|| sku.to_string()),
            category: patch
                .category
                .clone()
                .or_else(|| described.map(|item| item.category.clone()))
                .unwrap_or_default(),
            tax_class: patch
                .tax_class
                .clone()
                .or_else(|| described.map(|item| item.tax_class.clone()))
                .unwrap_or_default(),
            price: match (patch.price, offer) {
                (Some(price), _) => price,
                (None, Some(offer)) => offer.price,
                (None, None) => return Err(refuse("price: the item has none yet: give one".into())),
            },
            available: patch.available.or(offer.map(|offer| offer.available)).unwrap_or(false),
        };
        item.check().map_err(|problem| refuse(problem.problem))?;
        let described = ItemRecord {
            name: item.name.clone(),
            category: item.category.clone(),
            tax_class: item.tax_class.clone(),
        };
        let mut changed = self.describe(&resolved, sku, described)?;
        changed |= self.offer(hq, &resolved, sku, item.price, item.available, at)?;
        if changed {
            self.base.finish(by, at)?;
        }
        Ok(changed)
    }

    /// Sets a SKU's name, category and tax class unless they are already so.
    fn describe(&mut self, resolved: &Resolved, sku: &str, described: ItemRecord) -> Result<bool, EditError> {
        if resolved.record.items.get(sku) == Some(&described) {
            return Ok(false);
        }
        let items = self.base.child("items")?;
        autosurgeon::reconcile_prop(&mut self.base.doc, items, sku, &described)
            .map_err(DocumentError::from)?;
        Ok(true)
    }

    /// Appends HQ's signed offer of a SKU unless the one in force already says so.
    fn offer(
        &mut self,
        hq: &HqSigningKey,
        resolved: &Resolved,
        sku: &str,
        price: Amount,
        available: bool,
        at: Timestamp,
    ) -> Result<bool, EditError> {
        let current = resolved.offers.get(sku).map(|signed| &signed.offer);
        if current.is_some_and(|offer| (offer.price, offer.available) == (price, available)) {
            return Ok(false);
        }
        let seq = current.map_or(1, |offer| offer.seq.saturating_add(1));
        let signed =
            hq.sign_offer(Offer { menu_id: self.base.id, sku: sku.to_string(), price, available, seq, at });
        self.base.append("offers", &OfferRecord::from_signed(&signed))?;
        Ok(true)
    }

    /// Reads the root and resolves the offers: each SKU's newest valid one, and the violations.
    fn resolve(&self, hq: Option<&HqPublicKey>) -> Result<Resolved, DocumentError> {
        let record: MenuRecord = self.base.record(DocKind::Menu)?;
        let list = self.base.child("offers")?;
        let (offers, violations) = resolve_offers(&self.base.doc, self.base.id, &list, hq);
        Ok(Resolved { record, offers, violations })
    }
}

/// The offer in force for every SKU (HQ's valid entry with the highest rank) and every entry
/// ignored, with the actor that wrote it.
fn resolve_offers(
    doc: &AutoCommit,
    menu_id: Uuid,
    list: &ObjId,
    hq: Option<&HqPublicKey>,
) -> (BTreeMap<String, SignedOffer>, Vec<AuthorityViolation>) {
    let mut offers: BTreeMap<String, SignedOffer> = BTreeMap::new();
    let mut violations = Vec::new();
    for (index, actor) in list_entries(doc, list) {
        let written: Option<OfferRecord> = autosurgeon::hydrate_prop(doc, list, index).ok();
        let signed = written.as_ref().and_then(|record| record.to_signed(menu_id));
        let valid = match (&signed, hq) {
            (Some(signed), Some(hq)) => signed.verify(hq),
            _ => false,
        };
        match signed {
            Some(signed) if valid => {
                let better = offers.get(&signed.offer.sku).is_none_or(|best| signed.rank() > best.rank());
                if better {
                    offers.insert(signed.offer.sku.clone(), signed);
                }
            }
            _ => violations.push(AuthorityViolation {
                doc_id: menu_id,
                actor,
                written: match written {
                    Some(record) => format!(
                        "offer {} at {} ({}) seq {}",
                        record.sku.chars().take(64).collect::<String>(),
                        Amount::from_minor(record.price),
                        if record.available { "available" } else { "unavailable" },
                        record.seq
                    ),
                    None => "malformed offer".to_string(),
                },
                reason: if hq.is_none() {
                    "no HQ key is configured to verify menu prices"
                } else {
                    "only HQ sets a menu price or availability: the signature does not verify with HQ's key"
                },
            }),
        }
    }
    (offers, violations)
}

/// Refuses prices meant for another currency than the menu's.
fn check_currency(record: &MenuRecord, currency: Option<Currency>) -> Result<(), EditError> {
    let Some(given) = currency else { return Ok(()) };
    if given.as_str() != record.currency {
        let menu = Currency::parse(&record.currency)
            .map_err(|source| EditError::Money { field: "currency", source })?;
        return Err(EditError::Money {
            field: "currency",
            source: MoneyError::CurrencyMismatch { left: given, right: menu },
        });
    }
    Ok(())
}
