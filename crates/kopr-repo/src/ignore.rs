//! `.kopiaignore` rules, with gitignore semantics: one pattern per line, `#` comments, `!` to
//! re-include, a trailing `/` for directories only, a `/` elsewhere anchors the pattern to the
//! directory holding the ignore file (otherwise it matches a name at any depth), and `*`, `?`,
//! `**` wildcards. The last matching rule wins.

/// Name of the per-directory ignore file.
pub const IGNORE_FILE: &str = ".kopiaignore";

/// One parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Directory (relative to the snapshot root, `""` for the root) holding the ignore file.
    pub base: String,
    negate: bool,
    dir_only: bool,
    anchored: bool,
    segments: Vec<String>,
}

/// Parses the text of an ignore file found in directory `base`.
pub fn parse(base: &str, text: &str) -> Vec<Rule> {
    let mut rules = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (negate, mut p) = match line.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let dir_only = p.ends_with('/');
        p = p.trim_end_matches('/');
        let anchored = p.contains('/');
        let p = p.trim_start_matches('/');
        if p.is_empty() {
            continue;
        }
        rules.push(Rule {
            base: base.to_string(),
            negate,
            dir_only,
            anchored,
            segments: p.split('/').map(str::to_string).collect(),
        });
    }
    rules
}

fn glob(pat: &[u8], s: &[u8]) -> bool {
    match (pat.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&pat[1..], s) || (!s.is_empty() && glob(pat, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&pat[1..], &s[1..]),
        (Some(b'['), Some(&c)) => match pat.iter().position(|&b| b == b']') {
            Some(end) if end > 1 => {
                let class = &pat[1..end];
                let (neg, class) = match class.first() {
                    Some(b'!') | Some(b'^') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == b'-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != neg && glob(&pat[end + 1..], &s[1..])
            }
            _ => c == b'[' && glob(&pat[1..], &s[1..]),
        },
        (Some(p), Some(c)) => p == c && glob(&pat[1..], &s[1..]),
        _ => false,
    }
}

fn match_segments(pat: &[String], path: &[&str]) -> bool {
    match pat.first() {
        None => path.is_empty(),
        Some(p) if p == "**" => (0..=path.len()).any(|i| match_segments(&pat[1..], &path[i..])),
        Some(p) => {
            !path.is_empty()
                && glob(p.as_bytes(), path[0].as_bytes())
                && match_segments(&pat[1..], &path[1..])
        }
    }
}

impl Rule {
    /// Whether this rule matches `rel` (relative to the snapshot root).
    fn matches(&self, rel: &str, is_dir: bool) -> bool {
        if self.dir_only && !is_dir {
            return false;
        }
        let local = if self.base.is_empty() {
            rel
        } else {
            match rel
                .strip_prefix(&self.base)
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(r) => r,
                None => return false,
            }
        };
        let parts: Vec<&str> = local.split('/').collect();
        if self.anchored {
            match_segments(&self.segments, &parts)
        } else {
            parts.last().is_some_and(|name| {
                self.segments.len() == 1 && glob(self.segments[0].as_bytes(), name.as_bytes())
            })
        }
    }
}

/// Whether `rel` is ignored by `rules` (in order, last match wins).
pub fn is_ignored(rules: &[Rule], rel: &str, is_dir: bool) -> bool {
    let mut ignored = false;
    for r in rules {
        if r.matches(rel, is_dir) {
            ignored = !r.negate;
        }
    }
    ignored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitignore_semantics() {
        let rules = parse(
            "",
            "# comment\n\n*.log\n!keep.log\nbuild/\n/top.txt\ndocs/**/*.tmp\n",
        );
        assert!(is_ignored(&rules, "a.log", false));
        assert!(is_ignored(&rules, "x/y/b.log", false));
        assert!(!is_ignored(&rules, "keep.log", false));
        assert!(is_ignored(&rules, "build", true));
        assert!(is_ignored(&rules, "src/build", true));
        assert!(!is_ignored(&rules, "build", false), "dir-only rule");
        assert!(is_ignored(&rules, "top.txt", false));
        assert!(
            !is_ignored(&rules, "sub/top.txt", false),
            "anchored to the ignore file's dir"
        );
        assert!(is_ignored(&rules, "docs/a/b/c.tmp", false));
        assert!(is_ignored(&rules, "docs/c.tmp", false));
        assert!(!is_ignored(&rules, "other/c.tmp", false));
    }

    #[test]
    fn nested_ignore_files_apply_below_their_directory() {
        let mut rules = parse("", "*.bak\n");
        rules.extend(parse("sub", "secret?.txt\n!important.bak\n[ab]*.dat\n"));
        assert!(is_ignored(&rules, "sub/secret1.txt", false));
        assert!(!is_ignored(&rules, "secret1.txt", false));
        assert!(!is_ignored(&rules, "sub/important.bak", false));
        assert!(is_ignored(&rules, "important.bak", false));
        assert!(is_ignored(&rules, "sub/b1.dat", false));
        assert!(!is_ignored(&rules, "sub/c1.dat", false));
    }
}
