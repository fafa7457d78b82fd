//! The little XML S3 answers with: ListObjectsV2 pages and error documents. A small reader
//! for flat, known element names; never trusts the input (missing or malformed parts are
//! errors or absent values, never panics).

use chrono::{DateTime, Utc};

/// Decodes the five XML entities and numeric character references.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|&e| e <= 12) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..end];
        let decoded = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .or_else(|| ent.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Finds the next `<tag>` (or `<tag attr=...>`, `<tag/>`) at or after `from`; returns the
/// content range and the position after the closing tag.
fn next_element(xml: &str, tag: &str, from: usize) -> Option<(std::ops::Range<usize>, usize)> {
    let open = format!("<{tag}");
    let mut pos = from;
    loop {
        let start = pos + xml.get(pos..)?.find(&open)?;
        let after = start + open.len();
        let next = xml[after..].chars().next()?;
        if next == '>' || next == '/' || next.is_whitespace() {
            let gt = after + xml[after..].find('>')?;
            if xml[..gt].ends_with('/') {
                return Some((gt + 1..gt + 1, gt + 1));
            }
            let close = format!("</{tag}>");
            let end = gt + 1 + xml[gt + 1..].find(&close)?;
            return Some((gt + 1..end, end + close.len()));
        }
        pos = after;
    }
}

/// The inner text of every `<tag>` element, in order.
pub fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some((r, next)) = next_element(xml, tag, pos) {
        out.push(&xml[r]);
        pos = next;
    }
    out
}

/// The decoded text of the first `<tag>` element.
pub fn text(xml: &str, tag: &str) -> Option<String> {
    next_element(xml, tag, 0).map(|(r, _)| unescape(xml[r].trim()))
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Full object key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub last_modified: DateTime<Utc>,
}

/// One page of ListObjectsV2.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    /// The objects of this page.
    pub objects: Vec<Object>,
    /// The token for the next page when the listing is truncated.
    pub next_token: Option<String>,
}

/// Parses a ListObjectsV2 answer.
pub fn parse_list(xml: &str) -> Result<ListPage, String> {
    if next_element(xml, "ListBucketResult", 0).is_none() {
        return Err("the answer is not a ListBucketResult document".into());
    }
    let mut page = ListPage::default();
    for c in elements(xml, "Contents") {
        let key = text(c, "Key").ok_or("listing entry without Key")?;
        let size = text(c, "Size")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("listing entry {key} without a valid Size"))?;
        let lm = text(c, "LastModified").unwrap_or_default();
        let last_modified = DateTime::parse_from_rfc3339(&lm)
            .map_err(|e| format!("listing entry {key}: invalid LastModified {lm:?}: {e}"))?
            .with_timezone(&Utc);
        page.objects.push(Object {
            key,
            size,
            last_modified,
        });
    }
    let truncated = text(xml, "IsTruncated").is_some_and(|t| t.eq_ignore_ascii_case("true"));
    if truncated {
        let token = text(xml, "NextContinuationToken")
            .filter(|t| !t.is_empty())
            .ok_or("truncated listing without NextContinuationToken")?;
        page.next_token = Some(token);
    }
    Ok(page)
}

/// The parts of an S3 error document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorDoc {
    /// `NoSuchKey`, `SignatureDoesNotMatch`, ...
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// The bucket's region, when the error says it.
    pub region: String,
}

/// Parses an error document; absent parts are empty.
pub fn parse_error(xml: &str) -> ErrorDoc {
    ErrorDoc {
        code: text(xml, "Code").unwrap_or_default(),
        message: text(xml, "Message").unwrap_or_default(),
        region: text(xml, "Region").unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_truncated_page() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>bucket</Name><Prefix>r/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=&amp;x</NextContinuationToken>
  <Contents><Key>r/kopia.repository</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>
    <ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>
    <StorageClass>STANDARD</StorageClass><Owner><ID>x</ID></Owner></Contents>
  <Contents><Key>r/a&amp;b</Key><LastModified>2024-01-02T03:04:05Z</LastModified><Size>0</Size></Contents>
</ListBucketResult>"#;
        let p = parse_list(xml).unwrap();
        assert_eq!(p.objects.len(), 2);
        assert_eq!(p.objects[0].key, "r/kopia.repository");
        assert_eq!(p.objects[0].size, 434234);
        assert_eq!(
            p.objects[0].last_modified.to_rfc3339(),
            "2009-10-12T17:50:30+00:00"
        );
        assert_eq!(p.objects[1].key, "r/a&b");
        assert_eq!(
            p.next_token.as_deref(),
            Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=&x")
        );
    }

    #[test]
    fn parses_empty_and_rejects_garbage() {
        let p = parse_list("<ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount></ListBucketResult>").unwrap();
        assert!(p.objects.is_empty() && p.next_token.is_none());
        assert!(parse_list("<html>proxy error</html>").is_err());
        assert!(parse_list("<ListBucketResult><Contents><Key>a</Key></Contents>").is_err());
        assert!(
            parse_list("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>")
                .is_err()
        );
        assert!(parse_list("<ListBucketResult><Contents><Key>a").is_err());
    }

    #[test]
    fn parses_errors_and_entities() {
        let e = parse_error("<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region &apos;us-east-1&apos; is wrong</Message><Region>eu-west-1</Region></Error>");
        assert_eq!(e.code, "AuthorizationHeaderMalformed");
        assert_eq!(e.message, "the region 'us-east-1' is wrong");
        assert_eq!(e.region, "eu-west-1");
        assert_eq!(parse_error(""), ErrorDoc::default());
        assert_eq!(unescape("a&#65;&#x42;&bogus;&"), "aAB&bogus;&");
        assert_eq!(text("<A/><A>x</A>", "A").as_deref(), Some(""));
        assert_eq!(elements("<Keys>1</Keys><Key>2</Key>", "Key"), vec!["2"]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_input(s in ".{0,300}") {
            let _ = parse_list(&s);
            let _ = parse_error(&s);
            let _ = unescape(&s);
        }

        #[test]
        fn never_panics_on_xmlish_input(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("<ListBucketResult>".to_string()),
                    proptest::strategy::Just("</ListBucketResult>".to_string()),
                    proptest::strategy::Just("<Contents>".to_string()),
                    proptest::strategy::Just("</Contents>".to_string()),
                    proptest::strategy::Just("<Key>".to_string()),
                    proptest::strategy::Just("</Key>".to_string()),
                    proptest::strategy::Just("<Size/>".to_string()),
                    proptest::strategy::Just("<IsTruncated>true</IsTruncated>".to_string()),
                    proptest::strategy::Just("&amp;&#x1F600;&#99999999;".to_string()),
                    "[a-zé<>/&;]{0,6}",
                ],
                0..40,
            )
        ) {
            let s = parts.concat();
            let _ = parse_list(&s);
            let _ = parse_error(&s);
        }
    }
}
