//! The Token Status List's list itself (draft-ietf-oauth-status-list §4): one bit per index, packed least significant bit first, compressed with DEFLATE in the ZLIB format and base64url-encoded. Pure: no store, no clock.

use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

/// A 1-bit status list (`bits: 1`): 0 VALID, 1 INVALID (§7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusBits {
    bytes: Vec<u8>,
}

/// Why an encoded list was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("lst is not base64url")]
    Base64,
    #[error("lst is not a zlib stream")]
    Zlib,
    #[error("lst inflates past the allowed size")]
    TooLarge,
}

impl StatusBits {
    /// `size` entries, all VALID. §13.4 recommends a multiple of 8; it is rounded up to one.
    pub fn new(size: usize) -> Self {
        Self {
            bytes: vec![0; size.div_ceil(8)],
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len() * 8
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Sets entry `idx` to INVALID; an index past the end is ignored (it names no token).
    pub fn set(&mut self, idx: u64) {
        if let Some(byte) = usize::try_from(idx / 8)
            .ok()
            .and_then(|i| self.bytes.get_mut(i))
        {
            *byte |= 1 << (idx % 8);
        }
    }

    /// Sets every entry in `start..end` (clamped to the list).
    pub fn set_range(&mut self, start: u64, end: u64) {
        let end = end.min(self.len() as u64);
        let mut idx = start;
        while idx < end {
            if idx.is_multiple_of(8) && idx + 8 <= end {
                self.bytes[(idx / 8) as usize] = 0xff;
                idx += 8;
            } else {
                self.set(idx);
                idx += 1;
            }
        }
    }

    /// Whether entry `idx` is INVALID; `None` past the end (§8.3: no statement can be made).
    pub fn get(&self, idx: u64) -> Option<bool> {
        let byte = self.bytes.get(usize::try_from(idx / 8).ok()?)?;
        Some(byte & (1 << (idx % 8)) != 0)
    }

    /// How many entries are INVALID.
    pub fn count(&self) -> u64 {
        self.bytes.iter().map(|b| u64::from(b.count_ones())).sum()
    }

    /// The `lst` value: zlib at the highest level (§4.1 step 4), base64url without padding.
    pub fn encode(&self) -> String {
        let mut encoder = ZlibEncoder::new(
            Vec::with_capacity(self.bytes.len() / 64 + 64),
            Compression::best(),
        );
        encoder
            .write_all(&self.bytes)
            .expect("writing to a Vec cannot fail");
        let compressed = encoder.finish().expect("writing to a Vec cannot fail");
        URL_SAFE_NO_PAD.encode(compressed)
    }

    /// Decodes an `lst` value, refusing one that inflates past `max_bytes` (§11.1: a small
    /// token must not inflate into an unbounded allocation).
    pub fn decode(lst: &str, max_bytes: usize) -> Result<Self, DecodeError> {
        let compressed = URL_SAFE_NO_PAD
            .decode(lst.trim_end_matches('='))
            .map_err(|_| DecodeError::Base64)?;
        let mut bytes = Vec::new();
        ZlibDecoder::new(compressed.as_slice())
            .take(max_bytes as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|_| DecodeError::Zlib)?;
        if bytes.len() > max_bytes {
            return Err(DecodeError::TooLarge);
        }
        Ok(Self { bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// draft-ietf-oauth-status-list §4.1: statuses 1,0,0,1,1,1,0,1, 1,1,0,0,0,1,0,1 pack into
    /// 0xB9 0xA3, and its Appendix C JSON example encodes them as this `lst`.
    #[test]
    fn the_drafts_16_entry_example_packs_lsb_first_and_encodes_as_published() {
        let mut list = StatusBits::new(16);
        for (idx, status) in [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]
            .into_iter()
            .enumerate()
        {
            if status == 1 {
                list.set(idx as u64);
            }
        }
        assert_eq!(list.bytes, [0xb9, 0xa3]);
        assert_eq!(list.encode(), "eNrbuRgAAhcBXQ");
        let decoded = StatusBits::decode("eNrbuRgAAhcBXQ", 1024).unwrap();
        assert_eq!(decoded, list);
    }

    /// Appendix C, 1-bit Status List: 2^20 entries with these indices INVALID.
    const APPENDIX_C_SET: [u64; 11] = [
        0, 1993, 25460, 159495, 495669, 554353, 645645, 723232, 854545, 934534, 1000345,
    ];
    const APPENDIX_C_LST: &str = concat!(
        "eNrt3AENwCAMAEGogklACtKQPg9LugC9k_ACvreiogE",
        "AAKkeCQAAAAAAAAAAAAAAAAAAAIBylgQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAXG9IAAAAAAAAAPwsJAAAAAAAAAAAAAAAvhsSAAAAAAAAAAA",
        "A7KpLAAAAAAAAAAAAAAAAAAAAAJsLCQAAAAAAAAAAADjelAAAAAAAAAAAKjDMAQAAA",
        "ACAZC8L2AEb"
    );

    #[test]
    fn the_drafts_appendix_c_vector_decodes_to_exactly_its_statuses() {
        let decoded = StatusBits::decode(APPENDIX_C_LST, 1 << 17).unwrap();
        assert_eq!(decoded.len(), 1 << 20);
        assert_eq!(decoded.count(), APPENDIX_C_SET.len() as u64);
        for idx in APPENDIX_C_SET {
            assert_eq!(decoded.get(idx), Some(true), "{idx}");
            assert_eq!(decoded.get(idx + 1), Some(false), "{idx}");
        }
        assert_eq!(decoded.get(1 << 20), None);
    }

    #[test]
    fn our_encoding_of_appendix_c_decodes_to_the_same_list() {
        let mut list = StatusBits::new(1 << 20);
        for idx in APPENDIX_C_SET {
            list.set(idx);
        }
        let ours = list.encode();
        assert_eq!(StatusBits::decode(&ours, 1 << 17).unwrap(), list);
        assert_eq!(
            StatusBits::decode(APPENDIX_C_LST, 1 << 17).unwrap(),
            StatusBits::decode(&ours, 1 << 17).unwrap()
        );
        // Same order of size as the reference (zlib level 9): within 16 bytes.
        assert!(ours.len().abs_diff(APPENDIX_C_LST.len()) <= 16, "{ours}");
    }

    #[test]
    fn ranges_set_exactly_their_entries() {
        let mut list = StatusBits::new(64);
        list.set_range(3, 21);
        for idx in 0..64 {
            assert_eq!(list.get(idx), Some((3..21).contains(&idx)), "{idx}");
        }
        list.set_range(60, 1000);
        assert_eq!(list.count(), 18 + 4);
    }

    #[test]
    fn a_list_that_inflates_too_far_or_is_not_zlib_is_refused() {
        let big = StatusBits::new(1 << 20).encode();
        assert_eq!(StatusBits::decode(&big, 1000), Err(DecodeError::TooLarge));
        assert_eq!(StatusBits::decode("!!", 1000), Err(DecodeError::Base64));
        assert_eq!(StatusBits::decode("AAAA", 1000), Err(DecodeError::Zlib));
    }
}
