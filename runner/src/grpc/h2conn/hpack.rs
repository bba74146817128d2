//! Request heads as HPACK header blocks, encoded once (RFC 7541).

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

/// A request head, encoded once as HPACK header blocks in three forms: literals that add
/// each field to the server's dynamic table (the first request on a connection), indexed
/// references to those entries (every later request on it), and literals without indexing
/// (valid anywhere: a connection that indexes another head, or whose table is too small).
/// Fields that match the static table are indexed in all three; nothing is Huffman-coded.
#[derive(Clone, Debug)]
pub struct HeaderBlock {
    pub(super) id: u64,
    pub(super) first: Bytes,
    pub(super) indexed: Bytes,
    pub(super) literal: Bytes,
    /// Dynamic-table space the inserted fields take (RFC 7541 section 4.1).
    pub(super) table_size: usize,
}

pub(super) static NEXT_BLOCK_ID: AtomicU64 = AtomicU64::new(1);

impl HeaderBlock {
    /// Encode `fields` (names lower-case, pseudo-headers first).
    pub fn encode<'a>(fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> Self {
        let (mut first, mut literal) = (Vec::new(), Vec::new());
        let mut inserted = 0usize;
        let mut table_size = 0;
        let mut refs: Vec<Option<usize>> = Vec::new();
        for (name, value) in fields {
            let mut name_index = None;
            let mut full = None;
            for (i, (n, v)) in STATIC_TABLE.iter().enumerate() {
                if n.as_bytes() == name {
                    name_index.get_or_insert(i + 1);
                    if v.as_bytes() == value {
                        full = Some(i + 1);
                        break;
                    }
                }
            }
            if let Some(i) = full {
                encode_int(&mut first, i, 7, 0x80);
                encode_int(&mut literal, i, 7, 0x80);
                refs.push(Some(i));
                continue;
            }
            // Literal with incremental indexing (6-bit prefix, 0x40) in `first`, without
            // indexing (4-bit prefix, 0x00) in `literal`.
            for (out, prefix, flag) in [(&mut first, 6, 0x40), (&mut literal, 4, 0x00)] {
                match name_index {
                    Some(i) => encode_int(out, i, prefix, flag),
                    None => {
                        out.push(flag);
                        encode_int(out, name.len(), 7, 0);
                        out.extend_from_slice(name);
                    }
                }
                encode_int(out, value.len(), 7, 0);
                out.extend_from_slice(value);
            }
            table_size += 32 + name.len() + value.len();
            inserted += 1;
            refs.push(None);
        }
        // The k-th of n inserted entries (0-based) ends at dynamic index 62 + (n - 1 - k).
        let mut indexed = Vec::new();
        let mut k = 0;
        for r in refs {
            let i = r.unwrap_or_else(|| {
                k += 1;
                62 + (inserted - k)
            });
            encode_int(&mut indexed, i, 7, 0x80);
        }
        HeaderBlock {
            id: NEXT_BLOCK_ID.fetch_add(1, Ordering::Relaxed),
            first: first.into(),
            indexed: indexed.into(),
            literal: literal.into(),
            table_size,
        }
    }
}

/// How a connection uses the server's HPACK dynamic table for our request heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Indexing {
    /// Nothing inserted yet.
    Unused,
    /// The fields of this head (by id) are in the table.
    Head(u64),
    /// The server shrank its table after we inserted: the next block starts with a size
    /// update to 0, then literals only.
    MustClear,
    /// Literals only.
    Off,
}

/// HPACK integer with an N-bit prefix (RFC 7541 section 5.1).
pub(super) fn encode_int(out: &mut Vec<u8>, mut v: usize, prefix: u8, flags: u8) {
    let max = (1usize << prefix) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// The entries of the HPACK static table we may index (RFC 7541 appendix A, in order).
pub(super) const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];
