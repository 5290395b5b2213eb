//! The structural check of Automerge's binary format, run before automerge decodes anything.
//!
//! A chunk is `magic (4) | checksum (4) | kind (1) | uLEB length | body`. A document chunk's body
//! is its actors, heads, the change and operation column descriptions (`uLEB count`, then
//! `uLEB spec, uLEB length` each) and the column data; a change chunk's body is its header
//! fields, its operation column descriptions and data. A column's spec holds its id (`spec >> 4`),
//! whether it is deflated (`0b1000`) and its type (the low 3 bits), which fixes how its rows are
//! encoded: run-length encoded values (`sLEB count`: `n > 0` one value repeated `n` times,
//! `n < 0` that many literal values, `0` then a `uLEB` count of nulls), boolean runs (`uLEB`
//! lengths), or raw bytes. Counting rows needs only the run headers and the value lengths, so it
//! is one pass over the bytes and allocates only to inflate a deflated column (bounded).

use std::borrow::Cow;
use std::io::Read;

use crate::{COLUMN_ROWS_MAX, DOCUMENT_BYTES_MAX, LoadError};

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const HASH_BYTES: u64 = 32;

/// Refuses more than [`DOCUMENT_BYTES_MAX`] bytes.
pub(crate) fn check_size(bytes: usize) -> Result<(), LoadError> {
    if bytes > DOCUMENT_BYTES_MAX {
        return Err(LoadError::TooLarge { bytes, max: DOCUMENT_BYTES_MAX });
    }
    Ok(())
}

/// Checks that `bytes` are whole chunks of the kinds tillmesh peers write — documents, changes and
/// deflated changes (a saved document may end with changes whose dependencies it lacks) — with
/// every column's rows within [`COLUMN_ROWS_MAX`]. Bundles, which tillmesh never writes, and
/// unknown kinds are refused.
pub(crate) fn check(bytes: &[u8]) -> Result<(), LoadError> {
    check_size(bytes.len())?;
    let mut reader = Reader::new(bytes);
    if reader.is_empty() {
        return Err(reader.malformed("no chunk"));
    }
    while !reader.is_empty() {
        if reader.take(4)? != MAGIC {
            return Err(reader.malformed("not Automerge's magic bytes"));
        }
        reader.take(4)?; // checksum, verified by automerge
        let kind = reader.byte()?;
        let length = reader.uleb()?;
        let body = reader.take_u64(length)?;
        match kind {
            0 => document(body)?,
            1 => change(body)?,
            2 => change(&inflate(body)?)?,
            kind => return Err(LoadError::ChunkKind { kind, name: chunk_name(kind) }),
        }
    }
    Ok(())
}

fn chunk_name(kind: u8) -> &'static str {
    match kind {
        0 => "document",
        1 => "change",
        2 => "deflated change",
        3 => "bundle",
        _ => "unknown",
    }
}

/// A document chunk's body.
fn document(body: &[u8]) -> Result<(), LoadError> {
    let mut reader = Reader::new(body);
    let actors = reader.count(1)?;
    for _ in 0..actors {
        let length = reader.uleb()?;
        reader.take_u64(length)?;
    }
    let heads = reader.count(HASH_BYTES)?;
    reader.take_u64(heads * HASH_BYTES)?;
    let change_columns = columns(&mut reader)?;
    let op_columns = columns(&mut reader)?;
    for (spec, length) in change_columns.into_iter().chain(op_columns) {
        rows(spec, reader.take_u64(length)?)?;
    }
    // What follows (the heads' change indexes) is read by automerge, with its own checks.
    Ok(())
}

/// A change chunk's body.
fn change(body: &[u8]) -> Result<(), LoadError> {
    let mut reader = Reader::new(body);
    let deps = reader.count(HASH_BYTES)?;
    reader.take_u64(deps * HASH_BYTES)?;
    let actor = reader.uleb()?;
    reader.take_u64(actor)?;
    reader.uleb()?; // seq
    reader.uleb()?; // start op
    reader.sleb()?; // time
    let message = reader.uleb()?;
    reader.take_u64(message)?;
    let other_actors = reader.count(1)?;
    for _ in 0..other_actors {
        let length = reader.uleb()?;
        reader.take_u64(length)?;
    }
    for (spec, length) in columns(&mut reader)? {
        rows(spec, reader.take_u64(length)?)?;
    }
    Ok(())
}

/// A list of column descriptions: `(spec, data length)`.
fn columns(reader: &mut Reader<'_>) -> Result<Vec<(u64, u64)>, LoadError> {
    let count = reader.count(2)?;
    (0..count).map(|_| Ok((reader.uleb()?, reader.uleb()?))).collect()
}

/// How a column type's rows are encoded.
#[derive(Clone, Copy)]
enum Rows {
    /// Run-length encoded unsigned LEB128 values (group, actor, integer, value metadata).
    Unsigned,
    /// Run-length encoded signed LEB128 values (delta integers).
    Signed,
    /// Run-length encoded strings (uLEB length and UTF-8 bytes).
    Strings,
    /// Alternating false/true run lengths.
    Booleans,
    /// Raw bytes described by a value metadata column.
    Raw,
}

/// Checks one column's data: its declared rows within [`COLUMN_ROWS_MAX`].
fn rows(spec: u64, data: &[u8]) -> Result<(), LoadError> {
    let column = u32::try_from(spec >> 4).unwrap_or(u32::MAX);
    let data = if spec & 0b1000 != 0 { Cow::Owned(inflate(data)?) } else { Cow::Borrowed(data) };
    let encoding = match spec & 0b111 {
        0 | 1 | 2 | 6 => Rows::Unsigned,
        3 => Rows::Signed,
        4 => Rows::Booleans,
        5 => Rows::Strings,
        _ => Rows::Raw,
    };
    let mut reader = Reader::new(&data);
    let mut rows: u64 = 0;
    let mut add = |more: u64| {
        rows = rows.saturating_add(more);
        if rows > COLUMN_ROWS_MAX {
            return Err(LoadError::TooManyRows { column, rows, max: COLUMN_ROWS_MAX });
        }
        Ok(())
    };
    match encoding {
        Rows::Raw => {}
        Rows::Booleans => {
            while !reader.is_empty() {
                add(reader.uleb()?)?;
            }
        }
        Rows::Unsigned | Rows::Signed | Rows::Strings => {
            while !reader.is_empty() {
                let count = reader.sleb()?;
                if count > 0 {
                    add(count.unsigned_abs())?;
                    reader.value(encoding)?;
                } else if count < 0 {
                    add(count.unsigned_abs())?;
                    for _ in 0..count.unsigned_abs() {
                        reader.value(encoding)?;
                    }
                } else {
                    add(reader.uleb()?)?;
                }
            }
        }
    }
    Ok(())
}

/// Inflates a raw DEFLATE stream, refusing more than [`DOCUMENT_BYTES_MAX`] bytes of output.
fn inflate(data: &[u8]) -> Result<Vec<u8>, LoadError> {
    let limit = DOCUMENT_BYTES_MAX as u64 + 1;
    let mut inflated = Vec::new();
    flate2::read::DeflateDecoder::new(data)
        .take(limit)
        .read_to_end(&mut inflated)
        .map_err(|_| LoadError::Malformed { offset: 0, problem: "a deflated part does not inflate" })?;
    check_size(inflated.len())?;
    Ok(inflated)
}

/// A cursor over bytes whose every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, position: 0 }
    }

    fn is_empty(&self) -> bool {
        self.position >= self.bytes.len()
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.position)
    }

    fn malformed(&self, problem: &'static str) -> LoadError {
        LoadError::Malformed { offset: self.position, problem }
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], LoadError> {
        if count > self.remaining() {
            return Err(self.malformed("ends before a declared length"));
        }
        let slice = &self.bytes[self.position..self.position + count];
        self.position += count;
        Ok(slice)
    }

    fn take_u64(&mut self, count: u64) -> Result<&'a [u8], LoadError> {
        let count = usize::try_from(count).map_err(|_| self.malformed("a length beyond memory"))?;
        self.take(count)
    }

    fn byte(&mut self) -> Result<u8, LoadError> {
        Ok(self.take(1)?[0])
    }

    /// A count of entries each at least `entry_bytes` long: refused when the rest of the bytes
    /// cannot hold them.
    fn count(&mut self, entry_bytes: u64) -> Result<u64, LoadError> {
        let count = self.uleb()?;
        if count.saturating_mul(entry_bytes) > self.remaining() as u64 {
            return Err(self.malformed("declares more entries than its bytes can hold"));
        }
        Ok(count)
    }

    fn uleb(&mut self) -> Result<u64, LoadError> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(self.malformed("a LEB128 number beyond 64 bits"));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(self.malformed("a LEB128 number beyond 64 bits"))
    }

    fn sleb(&mut self) -> Result<i64, LoadError> {
        let mut value: i64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= i64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                if shift + 7 < 64 && byte & 0x40 != 0 {
                    value |= -1i64 << (shift + 7);
                }
                return Ok(value);
            }
        }
        Err(self.malformed("a LEB128 number beyond 64 bits"))
    }

    /// Skips one value of a run-length encoded column.
    fn value(&mut self, encoding: Rows) -> Result<(), LoadError> {
        match encoding {
            Rows::Signed => {
                self.sleb()?;
            }
            Rows::Strings => {
                let length = self.uleb()?;
                self.take_u64(length)?;
            }
            Rows::Unsigned | Rows::Booleans | Rows::Raw => {
                self.uleb()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_numbers_read_as_automerge_writes_them() {
        assert_eq!(Reader::new(&[0xe5, 0x8e, 0x26]).uleb().ok(), Some(624_485));
        assert_eq!(Reader::new(&[0xc0, 0xbb, 0x78]).sleb().ok(), Some(-123_456));
        assert_eq!(Reader::new(&[0x7f]).sleb().ok(), Some(-1));
        assert!(Reader::new(&[0x80; 11]).uleb().is_err());
        assert!(Reader::new(&[0x80]).uleb().is_err(), "cut short");
    }

    #[test]
    fn a_run_declaring_more_rows_than_allowed_is_refused_without_decoding_them() {
        // One run of 2^40 copies of the value 7, in seven bytes.
        let mut data = vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 << 2];
        data.push(7);
        // spec: column 1, unsigned run-length encoded.
        let error = rows(1 << 4 | 2, &data).expect_err("too many rows");
        assert!(matches!(error, LoadError::TooManyRows { column: 1, .. }), "{error}");
        // A literal run claiming more values than bytes follow is refused by its declared rows
        // first, and a short one at the end of the bytes.
        assert!(rows(1 << 4 | 2, &[0x7e, 1]).is_err(), "two literals, one byte");
        assert!(rows(1 << 4 | 2, &[0x7e, 1, 2]).is_ok());
    }
}
