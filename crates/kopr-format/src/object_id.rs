//! Object ids and indirect object lists.
//!
//! An object id is the content id of its only chunk, prefixed by `I` once per level of
//! indirection and by `Z` when the chunk was compressed at the object layer (old repositories);
//! a legacy `D` before the content id is accepted. An indirect object's list is JSON:
//! `{"stream":"kopia:indirect","entries":[{"s":start,"l":length,"o":"id"},...]}` with zero
//! `s`/`l` omitted, followed by a newline.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{FormatError, Result};
use crate::index::ContentId;

/// An object id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    content: ContentId,
    indirection: u8,
    compressed: bool,
}

impl ObjectId {
    /// The object whose only chunk is `content`.
    pub fn direct(content: ContentId) -> Self {
        ObjectId {
            content,
            indirection: 0,
            compressed: false,
        }
    }

    /// A direct object compressed at the object layer.
    pub fn compressed(content: ContentId) -> Self {
        ObjectId {
            content,
            indirection: 0,
            compressed: true,
        }
    }

    /// The object whose chunk list is stored in `index`.
    pub fn indirect(index: ObjectId) -> Self {
        ObjectId {
            indirection: index.indirection.saturating_add(1),
            ..index
        }
    }

    /// Levels of indirection.
    pub fn indirection(&self) -> u8 {
        self.indirection
    }

    /// Whether the chunk is compressed at the object layer.
    pub fn is_compressed(&self) -> bool {
        self.compressed
    }

    /// The content of a direct object.
    pub fn content_id(&self) -> Option<ContentId> {
        (self.indirection == 0).then_some(self.content)
    }

    /// For an indirect object, the object holding its chunk list.
    pub fn index_object_id(&self) -> Option<ObjectId> {
        (self.indirection > 0).then(|| ObjectId {
            indirection: self.indirection - 1,
            ..self.clone()
        })
    }
}

/// Longest text of an object id: an `I` per level of indirection, `Z`, the content id.
const MAX_TEXT_LEN: usize = u8::MAX as usize + 1 + crate::index::content_id::MAX_TEXT_LEN;

impl ObjectId {
    /// The id's text, written into `text` in one piece: every directory entry holds an object
    /// id, and going through `Display` and serde's `collect_str` cost several times more.
    fn write_text<'a>(
        &self,
        text: &'a mut [u8; MAX_TEXT_LEN],
    ) -> std::result::Result<&'a str, std::str::Utf8Error> {
        let mut n = usize::from(self.indirection);
        text[..n].fill(b'I');
        if self.compressed {
            text[n] = b'Z';
            n += 1;
        }
        n += self.content.write_text(&mut text[n..]);
        // Letters and hex digits only (a content id's prefix is checked when it is made).
        std::str::from_utf8(&text[..n])
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            self.write_text(&mut [0u8; MAX_TEXT_LEN])
                .map_err(|_| fmt::Error)?,
        )
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

impl FromStr for ObjectId {
    type Err = FormatError;

    fn from_str(s0: &str) -> Result<Self> {
        let mut s = s0;
        let mut indirection = 0u8;
        while let Some(rest) = s.strip_prefix('I') {
            indirection = indirection.saturating_add(1);
            s = rest;
        }
        let compressed = match s.strip_prefix('Z') {
            Some(rest) => {
                s = rest;
                true
            }
            None => false,
        };
        if let Some(rest) = s.strip_prefix('D') {
            s = rest;
        }
        if indirection > 0 && compressed {
            return Err(FormatError::InvalidInput(format!(
                "malformed object ID {s0:?}: compression and indirection are mutually exclusive"
            )));
        }
        let content = s
            .parse()
            .map_err(|e| FormatError::InvalidInput(format!("malformed object ID {s0:?}: {e}")))?;
        Ok(ObjectId {
            content,
            indirection,
            compressed,
        })
    }
}

impl Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(
            self.write_text(&mut [0u8; MAX_TEXT_LEN])
                .map_err(serde::ser::Error::custom)?,
        )
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One chunk of an indirect object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndirectEntry {
    /// Offset of the chunk in the object.
    #[serde(rename = "s", default, skip_serializing_if = "is_zero")]
    pub start: u64,
    /// Length of the chunk.
    #[serde(rename = "l", default, skip_serializing_if = "is_zero")]
    pub length: u64,
    /// The chunk's object.
    #[serde(rename = "o")]
    pub object: ObjectId,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Serialize, Deserialize)]
struct IndirectList {
    stream: String,
    entries: Vec<IndirectEntry>,
}

const INDIRECT_STREAM: &str = "kopia:indirect";

/// Encodes a chunk list as Kopia writes it.
pub fn encode_indirect(entries: &[IndirectEntry]) -> Vec<u8> {
    let mut out = serde_json::to_vec(&IndirectList {
        stream: INDIRECT_STREAM.into(),
        entries: entries.to_vec(),
    })
    .unwrap_or_default();
    out.push(b'\n');
    out
}

/// Decodes and validates a chunk list (chunks must be contiguous from offset 0).
pub fn decode_indirect(data: &[u8]) -> Result<Vec<IndirectEntry>> {
    let list: IndirectList = serde_json::from_slice(data)
        .map_err(|e| FormatError::malformed("indirect object", e.to_string()))?;
    if list.stream != INDIRECT_STREAM {
        return Err(FormatError::malformed(
            "indirect object",
            format!("unexpected stream {:?}", list.stream),
        ));
    }
    let mut pos = 0u64;
    for e in &list.entries {
        if e.start != pos {
            return Err(FormatError::malformed(
                "indirect object",
                format!("chunk at {} expected at {pos}", e.start),
            ));
        }
        pos = pos
            .checked_add(e.length)
            .ok_or_else(|| FormatError::malformed("indirect object", "length overflow"))?;
    }
    Ok(list.entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms_match_kopia() {
        for s in ["abcd", "kabcd", "Iabcd", "IIkabcd", "Zabcd", "Zxabcd"] {
            assert_eq!(s.parse::<ObjectId>().unwrap().to_string(), s);
        }
        let legacy: ObjectId = "D13ea27f9ad891ad4a2edfa983906863d".parse().unwrap();
        assert_eq!(legacy.to_string(), "13ea27f9ad891ad4a2edfa983906863d");
        assert!("IZabcd".parse::<ObjectId>().is_err());
        assert!("I".parse::<ObjectId>().is_err());
        assert!("Ixyz".parse::<ObjectId>().is_err());
        let i: ObjectId = "IIkabcd".parse().unwrap();
        assert_eq!(i.indirection(), 2);
        assert_eq!(i.index_object_id().unwrap().to_string(), "Ikabcd");
        assert_eq!(i.content_id(), None);
        assert_eq!(
            ObjectId::indirect("xab".parse().unwrap()).to_string(),
            "Ixab"
        );
    }

    #[test]
    fn indirect_list_has_kopias_shape() {
        let e = vec![
            IndirectEntry {
                start: 0,
                length: 10,
                object: "aa".parse().unwrap(),
            },
            IndirectEntry {
                start: 10,
                length: 5,
                object: "bb".parse().unwrap(),
            },
        ];
        let enc = encode_indirect(&e);
        assert_eq!(
            String::from_utf8(enc.clone()).unwrap(),
            "{\"stream\":\"kopia:indirect\",\"entries\":[{\"l\":10,\"o\":\"aa\"},{\"s\":10,\"l\":5,\"o\":\"bb\"}]}\n"
        );
        assert_eq!(decode_indirect(&enc).unwrap(), e);
        // Kopia's documented sample with the legacy D prefix
        let sample = br#"{"stream":"kopia:indirect","entries":[{"l":1698099,"o":"D13ea27f9ad891ad4a2edfa983906863d"},{"s":1698099,"l":1302081,"o":"De8ca8327cd3af5f4edbd5ed1009c525e"}]}"#;
        assert_eq!(decode_indirect(sample).unwrap().len(), 2);
        assert!(decode_indirect(
            br#"{"stream":"kopia:indirect","entries":[{"s":5,"l":1,"o":"aa"}]}"#
        )
        .is_err());
        assert!(decode_indirect(br#"{"stream":"other","entries":[]}"#).is_err());
        assert!(decode_indirect(b"garbage").is_err());
    }

    /// The JSON text of an object id is its `Display` text, whatever its indirection,
    /// compression and prefix, and reads back.
    #[test]
    fn json_text_is_the_display_text() {
        for id in ["ab", "k0123456789abcdef0123456789abcdef", "xff"] {
            let id: ContentId = id.parse().unwrap();
            let compressed = ObjectId::compressed(id);
            let json = serde_json::to_string(&compressed).unwrap();
            assert_eq!(json, format!("\"Z{id}\""));
            assert_eq!(serde_json::from_str::<ObjectId>(&json).unwrap(), compressed);
            let mut oid = ObjectId::direct(id);
            for _ in 0..12 {
                let json = serde_json::to_string(&oid).unwrap();
                assert_eq!(json, format!("\"{oid}\""));
                assert_eq!(serde_json::from_str::<ObjectId>(&json).unwrap(), oid);
                oid = ObjectId::indirect(oid);
            }
        }
    }
}
