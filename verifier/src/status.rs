//! Token Status List (draft-ietf-oauth-status-list): the `status` claim, the list token and the
//! compressed bit array. No I/O here; the `http` feature fetches and caches the lists.

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The largest inflated list accepted by default: 1 MiB, 8 Mi tokens at one bit each.
pub const DEFAULT_MAX_LIST_BYTES: usize = 1 << 20;

/// A token's `status` claim: `{"status_list": {"idx", "uri"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusClaim {
    pub status_list: StatusListRef,
}

/// Where one token's status is: index `idx` of the list at `uri`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusListRef {
    pub idx: u64,
    pub uri: String,
}

/// Why a status list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("status list token is malformed")]
    Malformed,
    #[error("bits must be 1, 2, 4 or 8")]
    UnsupportedBits,
    #[error("lst is not base64url of zlib data")]
    BadEncoding,
    #[error("the inflated list is larger than allowed")]
    TooLarge,
}

/// A decoded status list: `bits` bits per token, token `i`'s value in byte `i * bits / 8`,
/// least significant bits first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusList {
    bits: u8,
    bytes: Vec<u8>,
}

/// The `status_list` member of a list token's payload.
#[derive(Debug, Deserialize)]
pub struct EncodedList {
    pub bits: u8,
    pub lst: String,
}

/// The payload of a status list token (`typ: statuslist+jwt`).
#[derive(Debug, Deserialize)]
pub struct ListPayload {
    /// Must equal the URI the list was fetched from.
    pub sub: String,
    pub iat: Option<i64>,
    pub exp: Option<i64>,
    /// Seconds the list may be cached; the verifier bounds it to 10 s – 1 h.
    pub ttl: Option<u64>,
    pub status_list: EncodedList,
}

impl StatusList {
    /// Decodes `lst` (base64url without padding of a zlib stream, RFC 1950), refusing an inflated
    /// size above `max_bytes` without inflating further.
    pub fn decode(bits: u8, lst: &str, max_bytes: usize) -> Result<Self, ListError> {
        if !matches!(bits, 1 | 2 | 4 | 8) {
            return Err(ListError::UnsupportedBits);
        }
        let compressed = URL_SAFE_NO_PAD
            .decode(lst)
            .map_err(|_| ListError::BadEncoding)?;
        let mut bytes = Vec::new();
        flate2::read::ZlibDecoder::new(&compressed[..])
            .take(max_bytes as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|_| ListError::BadEncoding)?;
        if bytes.len() > max_bytes {
            return Err(ListError::TooLarge);
        }
        Ok(Self { bits, bytes })
    }

    /// How many token statuses the list holds.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64 * 8 / u64::from(self.bits)
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The status of token `idx` (0 valid, 1 invalid, 2 suspended, …), or `None` past the end.
    pub fn get(&self, idx: u64) -> Option<u8> {
        if idx >= self.len() {
            return None;
        }
        let bits = u64::from(self.bits);
        let byte = self.bytes[(idx * bits / 8) as usize];
        let shift = (idx * bits % 8) as u32;
        let mask = ((1u16 << bits) - 1) as u8;
        Some((byte >> shift) & mask)
    }

    /// Encodes `statuses` (each below 2^`bits`) as a `lst` value; for tests and tools.
    pub fn encode(bits: u8, statuses: &[u8]) -> String {
        use std::io::Write;
        let per_byte = 8 / usize::from(bits);
        let mut bytes = vec![0u8; statuses.len().div_ceil(per_byte)];
        for (i, status) in statuses.iter().enumerate() {
            bytes[i / per_byte] |= status << ((i % per_byte) * usize::from(bits));
        }
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&bytes).expect("writing to a Vec");
        URL_SAFE_NO_PAD.encode(encoder.finish().expect("writing to a Vec"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The draft's one-bit example (§4.1): statuses 1,0,0,1,1,1,0,1 1,1,0,0,0,1,0,1.
    #[test]
    fn the_drafts_one_bit_example_decodes() {
        let list = StatusList::decode(1, "eNrbuRgAAhcBXQ", 1024).unwrap();
        assert_eq!(list.bytes, [0xb9, 0xa3]);
        let expected = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1];
        for (i, status) in expected.iter().enumerate() {
            assert_eq!(list.get(i as u64), Some(*status), "index {i}");
        }
        assert_eq!(list.len(), 16);
        assert_eq!(list.get(16), None);
    }

    /// The draft's two-bit example (§4.1).
    #[test]
    fn the_drafts_two_bit_example_decodes() {
        let list = StatusList::decode(2, "eNo76fITAAPfAgc", 1024).unwrap();
        assert_eq!(list.bytes, [0xc9, 0x44, 0xf9]);
        let expected = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3];
        for (i, status) in expected.iter().enumerate() {
            assert_eq!(list.get(i as u64), Some(*status), "index {i}");
        }
    }

    #[test]
    fn encode_and_decode_agree_for_every_width() {
        for bits in [1u8, 2, 4, 8] {
            let statuses: Vec<u8> = (0..1000u32).map(|i| (i * 7 % (1 << bits)) as u8).collect();
            let list =
                StatusList::decode(bits, &StatusList::encode(bits, &statuses), 1 << 20).unwrap();
            for (i, status) in statuses.iter().enumerate() {
                assert_eq!(list.get(i as u64), Some(*status));
            }
        }
    }

    #[test]
    fn a_zip_bomb_is_refused_without_inflating_it_whole() {
        let lst = StatusList::encode(8, &vec![0u8; 8 << 20]);
        assert!(lst.len() < 200_000, "compresses well: {}", lst.len());
        assert_eq!(
            StatusList::decode(1, &lst, DEFAULT_MAX_LIST_BYTES),
            Err(ListError::TooLarge)
        );
    }

    #[test]
    fn malformed_lists_are_refused() {
        assert_eq!(
            StatusList::decode(3, "eNrbuRgAAhcBXQ", 1024),
            Err(ListError::UnsupportedBits)
        );
        assert_eq!(
            StatusList::decode(1, "!!!", 1024),
            Err(ListError::BadEncoding)
        );
        assert_eq!(
            StatusList::decode(1, "AAAA", 1024),
            Err(ListError::BadEncoding)
        );
        let valid = StatusList::encode(1, &[1, 0, 1]);
        assert_eq!(
            StatusList::decode(1, &valid[..valid.len() - 3], 1024),
            Err(ListError::BadEncoding)
        );
    }
}
