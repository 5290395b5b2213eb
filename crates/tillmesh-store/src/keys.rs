//! Key encodings. Integers are big-endian (timestamps with the sign bit flipped) so that sled's
//! byte order is numeric order and a reverse scan is newest first.

use tillmesh_core::OrderStatus;
use uuid::Uuid;

/// `updatedAt ++ id`.
pub(crate) fn updated(at_ms: i64, id: Uuid) -> Vec<u8> {
    let mut key = Vec::with_capacity(24);
    key.extend_from_slice(&((at_ms as u64) ^ (1 << 63)).to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// The time in a key made by [`updated`].
pub(crate) fn updated_at_of(key: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = key.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

/// The id in a key made by [`updated`].
pub(crate) fn id_of_updated(key: &[u8]) -> Option<Uuid> {
    decode_uuid(key.get(8..)?)
}

/// One byte per order status, in status order.
pub(crate) fn status_tag(status: OrderStatus) -> u8 {
    OrderStatus::ALL.iter().position(|s| *s == status).unwrap_or(0) as u8
}

/// `status tag ++ updatedAt ++ id`.
pub(crate) fn status_updated(status: OrderStatus, at_ms: i64, id: Uuid) -> Vec<u8> {
    let mut key = vec![status_tag(status)];
    key.extend_from_slice(&updated(at_ms, id));
    key
}

/// `a ++ b`.
pub(crate) fn pair(a: Uuid, b: Uuid) -> Vec<u8> {
    [a.as_bytes().as_slice(), b.as_bytes().as_slice()].concat()
}

/// `remote ++ 0 ++ suffix`.
pub(crate) fn remote(remote: &[u8], suffix: &[u8]) -> Vec<u8> {
    [remote, &[0], suffix].concat()
}

pub(crate) fn decode_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

pub(crate) fn decode_uuid(bytes: &[u8]) -> Option<Uuid> {
    Uuid::from_slice(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_sort_numerically() {
        let id = Uuid::nil();
        let times = [i64::MIN, -5, 0, 7, 1_704_067_200_000, i64::MAX];
        for pair in times.windows(2) {
            assert!(updated(pair[0], id) < updated(pair[1], id));
        }
        assert_eq!(updated_at_of(&updated(-5, id)), Some(-5));
    }
}
