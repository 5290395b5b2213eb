//! The type every field of a document must have, to say which field is wrong when a document
//! made elsewhere (a JS front-end, another implementation) does not read.
//!
//! Reading a document goes through autosurgeon, whose errors name the value found but not
//! where (`unexpected Text`). When a read fails, [`explain`] walks the document against the
//! layouts below — the same types tillmesh writes, matched as strictly as autosurgeon reads
//! them — and names the first field that differs: its path, the type expected and the one
//! found. `docs/DOCUMENTS.md` shows how a JS client writes each type.

use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};

use crate::kind::{DocKind, DocumentError, LayoutError};

/// What a field must hold.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A plain string (in JS: an `ImmutableString`; a JS string is collaborative text).
    Str,
    /// A plain string or null.
    OptStr,
    /// A signed integer (in JS: a whole number, or `new Int(n)`).
    Int,
    /// An unsigned integer (in JS: `new Uint(n)`).
    Uint,
    /// A counter (in JS: `new Counter(n)`).
    Counter,
    /// A list.
    List,
    /// A map with these fields.
    Map(&'static [(&'static str, Expect)]),
    /// A map whose every entry is of one type.
    MapOf(&'static Expect),
    /// A field documents made by earlier builds lack: when present, of this type.
    Since(&'static Expect),
}

impl Expect {
    fn describe(self) -> &'static str {
        match self {
            Expect::Str => "a string (JS: ImmutableString)",
            Expect::OptStr => "a string (JS: ImmutableString) or null",
            Expect::Int => "an integer (JS: a whole number or Int)",
            Expect::Uint => "an unsigned integer (JS: Uint)",
            Expect::Counter => "a counter (JS: Counter)",
            Expect::List => "a list",
            Expect::Map(_) | Expect::MapOf(_) => "a map",
            Expect::Since(expect) => expect.describe(),
        }
    }

    fn matches(self, value: &Value<'_>) -> bool {
        match (self, value) {
            (Expect::Str | Expect::OptStr, Value::Scalar(scalar))
                if matches!(**scalar, ScalarValue::Str(_)) =>
            {
                true
            }
            (Expect::OptStr, Value::Scalar(scalar)) => matches!(**scalar, ScalarValue::Null),
            (Expect::Int, Value::Scalar(scalar)) => matches!(**scalar, ScalarValue::Int(_)),
            (Expect::Uint, Value::Scalar(scalar)) => matches!(**scalar, ScalarValue::Uint(_)),
            (Expect::Counter, Value::Scalar(scalar)) => matches!(**scalar, ScalarValue::Counter(_)),
            (Expect::List, Value::Object(ObjType::List)) => true,
            (Expect::Map(_) | Expect::MapOf(_), Value::Object(ObjType::Map)) => true,
            (Expect::Since(expect), value) => expect.matches(value),
            _ => false,
        }
    }
}

const ITEM: &[(&str, Expect)] = &[
    ("sku", Expect::Str),
    ("name", Expect::Str),
    ("unitPrice", Expect::Int),
    ("qty", Expect::Counter),
    ("qtyMilli", Expect::Since(&Expect::Counter)),
    ("addedBy", Expect::Str),
    ("addedAt", Expect::Int),
];

const VOID: &[(&str, Expect)] = &[("by", Expect::Str), ("at", Expect::Int)];

const ORDER: &[(&str, Expect)] = &[
    ("schema", Expect::Uint),
    ("kind", Expect::Str),
    ("id", Expect::Str),
    ("localId", Expect::Str),
    ("orderNumber", Expect::Str),
    ("deviceId", Expect::Str),
    ("currency", Expect::Str),
    ("taxRateBps", Expect::Uint),
    ("notes", Expect::Str),
    ("createdAt", Expect::Int),
    ("updatedAt", Expect::Int),
    ("items", Expect::MapOf(&Expect::Map(ITEM))),
    ("voids", Expect::MapOf(&Expect::Map(VOID))),
    ("progress", Expect::MapOf(&Expect::Int)),
    ("adjustment", Expect::Since(&Expect::Int)),
    ("legacyNames", Expect::Since(&Expect::MapOf(&Expect::Str))),
    ("claims", Expect::List),
    ("settlements", Expect::List),
];

const TRANSACTION: &[(&str, Expect)] = &[
    ("schema", Expect::Uint),
    ("kind", Expect::Str),
    ("id", Expect::Str),
    ("localId", Expect::Str),
    ("referenceNumber", Expect::Str),
    ("orderId", Expect::Str),
    ("deviceId", Expect::Str),
    ("amount", Expect::Int),
    ("currency", Expect::Str),
    ("paymentMethod", Expect::Str),
    ("cardLast4", Expect::OptStr),
    ("processorReference", Expect::OptStr),
    ("createdAt", Expect::Int),
    ("updatedAt", Expect::Int),
    ("legacyNames", Expect::Since(&Expect::MapOf(&Expect::Str))),
    ("claims", Expect::List),
    ("settlements", Expect::List),
];

const MENU_ITEM: &[(&str, Expect)] =
    &[("name", Expect::Str), ("category", Expect::Str), ("taxClass", Expect::Str)];

const MENU: &[(&str, Expect)] = &[
    ("schema", Expect::Uint),
    ("kind", Expect::Str),
    ("id", Expect::Str),
    ("currency", Expect::Str),
    ("createdAt", Expect::Int),
    ("updatedAt", Expect::Int),
    ("items", Expect::MapOf(&Expect::Map(MENU_ITEM))),
    ("offers", Expect::List),
];

/// Turns autosurgeon's error on reading a `kind` document into one that names the field, when
/// a field differs from the layout; otherwise keeps the error as it is.
pub(crate) fn explain(
    doc: &AutoCommit,
    kind: DocKind,
    id: uuid::Uuid,
    error: autosurgeon::HydrateError,
) -> DocumentError {
    let layout = match kind {
        DocKind::Order => ORDER,
        DocKind::Transaction => TRANSACTION,
        DocKind::Menu => MENU,
    };
    match first_mismatch(doc, &ROOT, "", layout) {
        Some((field, expected, found)) => {
            DocumentError::Layout(Box::new(LayoutError { id, field, expected, found }))
        }
        None => DocumentError::from(error),
    }
}

/// The first field under `obj` (named from `path`) that differs from `layout`: its path, what
/// was expected and what was found.
fn first_mismatch(
    doc: &AutoCommit,
    obj: &ObjId,
    path: &str,
    layout: &[(&str, Expect)],
) -> Option<(String, &'static str, String)> {
    layout.iter().find_map(|(key, expect)| field_mismatch(doc, obj, &join(path, key), key, *expect))
}

fn field_mismatch(
    doc: &AutoCommit,
    obj: &ObjId,
    path: &str,
    key: &str,
    expect: Expect,
) -> Option<(String, &'static str, String)> {
    let found = doc.get(obj, key).ok()?;
    let Some((value, child)) = found else {
        return match expect {
            Expect::Since(_) => None,
            _ => Some((path.to_string(), expect.describe(), "nothing".to_string())),
        };
    };
    if !expect.matches(&value) {
        return Some((path.to_string(), expect.describe(), describe_value(&value)));
    }
    let expect = match expect {
        Expect::Since(inner) => *inner,
        other => other,
    };
    match expect {
        Expect::Map(fields) => first_mismatch(doc, &child, path, fields),
        Expect::MapOf(entry) => doc
            .keys(&child)
            .find_map(|entry_key| field_mismatch(doc, &child, &join(path, &entry_key), &entry_key, *entry)),
        _ => None,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn describe_value(value: &Value<'_>) -> String {
    let text = match value {
        Value::Object(ObjType::Text) => "collaborative text (JS: a plain string)",
        Value::Object(ObjType::Map | ObjType::Table) => "a map",
        Value::Object(ObjType::List) => "a list",
        Value::Scalar(scalar) => match **scalar {
            ScalarValue::Str(_) => "a string",
            ScalarValue::Int(_) => "an integer",
            ScalarValue::Uint(_) => "an unsigned integer",
            ScalarValue::F64(_) => "a float (money and quantities are integers)",
            ScalarValue::Counter(_) => "a counter",
            ScalarValue::Timestamp(_) => "a timestamp",
            ScalarValue::Boolean(_) => "a boolean",
            ScalarValue::Null => "null",
            ScalarValue::Bytes(_) => "bytes",
            ScalarValue::Unknown { .. } => "an unknown type",
        },
    };
    text.to_string()
}
