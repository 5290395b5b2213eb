//! Reading a whole record out of a document in one pass per map.
//!
//! autosurgeon hydrates a struct field by field, each with Automerge's `get`, and a `get` seeks
//! the key through the document's op columns: an order's view asks about sixty keys, and took
//! 123 µs, more than twice the document's load. [`OnePass`] answers the same questions from one
//! `map_range` of each map, read the first time one of its keys is asked for: the same winning
//! values (`map_range` yields each key's winner, counters with their increments); the view takes
//! 50 µs (`cargo bench -p tillmesh-store --bench receive`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::RangeBounds;
use std::rc::Rc;

use automerge::{AutoCommit, AutomergeError, ObjId, ObjType, Prop, Value};
use autosurgeon::ReadDoc;

/// The winning value and object id of every key of one map.
type Entries = HashMap<String, (Value<'static>, ObjId)>;

/// A read-only view of `doc` for hydrating whole records ([`autosurgeon::hydrate`]): a map's
/// keys are read together, once; everything else is asked of the document itself.
pub(crate) struct OnePass<'a> {
    doc: &'a AutoCommit,
    /// Per object asked about: its keys' entries, or none for an object that is not a map.
    maps: RefCell<HashMap<ObjId, Option<Rc<Entries>>>>,
}

impl<'a> OnePass<'a> {
    pub(crate) fn new(doc: &'a AutoCommit) -> OnePass<'a> {
        OnePass { doc, maps: RefCell::new(HashMap::new()) }
    }

    /// The entries of `obj` when it is a map, read on the first call for it.
    fn entries(&self, obj: &ObjId) -> Option<Rc<Entries>> {
        if let Some(known) = self.maps.borrow().get(obj) {
            return known.clone();
        }
        let entries = match automerge::ReadDoc::object_type(self.doc, obj) {
            Ok(ObjType::Map | ObjType::Table) => Some(Rc::new(
                automerge::ReadDoc::map_range(self.doc, obj, ..)
                    .map(|item| (item.key.to_string(), (item.value.clone().into_value(), item.id())))
                    .collect(),
            )),
            _ => None,
        };
        self.maps.borrow_mut().insert(obj.clone(), entries.clone());
        entries
    }
}

impl ReadDoc for OnePass<'_> {
    type Parents<'b>
        = automerge::Parents<'b>
    where
        Self: 'b;

    fn get_heads(&self) -> Vec<automerge::ChangeHash> {
        ReadDoc::get_heads(self.doc)
    }

    fn get<P: Into<Prop>>(&self, obj: &ObjId, prop: P) -> Result<Option<(Value<'_>, ObjId)>, AutomergeError> {
        match prop.into() {
            Prop::Map(key) => match self.entries(obj) {
                Some(entries) => Ok(entries.get(&key).cloned()),
                None => ReadDoc::get(self.doc, obj, key),
            },
            index @ Prop::Seq(_) => ReadDoc::get(self.doc, obj, index),
        }
    }

    fn object_type<O: AsRef<ObjId>>(&self, obj: O) -> Option<ObjType> {
        ReadDoc::object_type(self.doc, obj)
    }

    fn map_range<'b, O, R>(&'b self, obj: O, range: R) -> automerge::iter::MapRange<'b>
    where
        R: RangeBounds<String> + 'b,
        O: AsRef<ObjId>,
    {
        ReadDoc::map_range(self.doc, obj, range)
    }

    fn list_range<O: AsRef<ObjId>, R: RangeBounds<usize>>(
        &self,
        obj: O,
        range: R,
    ) -> automerge::iter::ListRange<'_> {
        ReadDoc::list_range(self.doc, obj, range)
    }

    fn length<O: AsRef<ObjId>>(&self, obj: O) -> usize {
        ReadDoc::length(self.doc, obj)
    }

    fn text<O: AsRef<ObjId>>(&self, obj: O) -> Result<String, AutomergeError> {
        ReadDoc::text(self.doc, obj)
    }

    fn parents<O: AsRef<ObjId>>(&self, obj: O) -> Result<Self::Parents<'_>, AutomergeError> {
        ReadDoc::parents(self.doc, obj)
    }

    fn is_empty(&self) -> bool {
        ReadDoc::is_empty(self.doc)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use automerge::transaction::Transactable;
    use automerge::{ActorId, ROOT, ScalarValue};
    use autosurgeon::{Counter, Hydrate, MaybeMissing};

    use super::*;

    #[derive(Debug, Hydrate)]
    struct Root {
        name: String,
        absent: MaybeMissing<String>,
        visits: Counter,
        items: BTreeMap<String, Item>,
        tags: Vec<String>,
    }

    #[derive(Debug, Hydrate)]
    struct Item {
        qty: Counter,
        note: MaybeMissing<String>,
    }

    /// Two actors edit one document at once: conflicting values, counters both increment,
    /// items added on both sides, a key deleted on one; then they merge.
    fn edited_on_two_sides() -> AutoCommit {
        let mut a = AutoCommit::new().with_actor(ActorId::from([1u8; 16]));
        a.put(ROOT, "name", "first").expect("put");
        a.put(ROOT, "visits", ScalarValue::counter(1)).expect("put");
        let items = a.put_object(ROOT, "items", ObjType::Map).expect("items");
        let tags = a.put_object(ROOT, "tags", ObjType::List).expect("tags");
        a.insert(&tags, 0, "new").expect("insert");
        let soup = a.put_object(&items, "soup", ObjType::Map).expect("soup");
        a.put(&soup, "qty", ScalarValue::counter(1)).expect("put");
        a.put(&soup, "note", "hot").expect("put");
        a.commit();
        let mut b = a.fork().with_actor(ActorId::from([2u8; 16]));
        a.put(ROOT, "name", "from a").expect("put");
        b.put(ROOT, "name", "from b").expect("put");
        a.increment(ROOT, "visits", 2).expect("increment");
        b.increment(ROOT, "visits", 5).expect("increment");
        a.increment(&soup, "qty", 3).expect("increment");
        b.increment(&soup, "qty", -1).expect("increment");
        b.delete(&soup, "note").expect("delete");
        let bread = b.put_object(&items, "bread", ObjType::Map).expect("bread");
        b.put(&bread, "qty", ScalarValue::counter(2)).expect("put");
        b.insert(&tags, 1, "paid").expect("insert");
        a.merge(&mut b).expect("merge");
        a
    }

    #[test]
    fn one_pass_reads_what_autosurgeon_reads_key_by_key() {
        let doc = edited_on_two_sides();
        let key_by_key: Root = autosurgeon::hydrate(&doc).expect("hydrates");
        let one_pass: Root = autosurgeon::hydrate(&OnePass::new(&doc)).expect("hydrates");
        assert_eq!(format!("{one_pass:?}"), format!("{key_by_key:?}"));
        assert_eq!(one_pass.visits.value(), 8);
        assert_eq!(one_pass.items["soup"].qty.value(), 3);
        assert!(matches!(one_pass.items["soup"].note, MaybeMissing::Missing));
        assert!(matches!(one_pass.absent, MaybeMissing::Missing));
        assert_eq!(one_pass.tags, ["new", "paid"]);
        assert!(["from a", "from b"].contains(&one_pass.name.as_str()));
        assert_eq!(one_pass.items.len(), 2);
    }

    #[test]
    fn a_missing_or_mistyped_field_fails_as_it_does_key_by_key() {
        let mut doc = edited_on_two_sides();
        doc.delete(ROOT, "name").expect("delete");
        let one_pass = autosurgeon::hydrate::<_, Root>(&OnePass::new(&doc)).expect_err("no name");
        let key_by_key = autosurgeon::hydrate::<_, Root>(&doc).expect_err("no name");
        assert_eq!(one_pass.to_string(), key_by_key.to_string());
        doc.put(ROOT, "name", 7).expect("put");
        let one_pass = autosurgeon::hydrate::<_, Root>(&OnePass::new(&doc)).expect_err("not a string");
        let key_by_key = autosurgeon::hydrate::<_, Root>(&doc).expect_err("not a string");
        assert_eq!(one_pass.to_string(), key_by_key.to_string());
    }
}
