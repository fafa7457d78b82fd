//! The subset of Go's `text/template` that Kopia's notification templates use, over JSON data:
//! `{{ .A.B }}` (a field path; `.` is the current value), pipes into functions
//! (`{{ .X | bytes }}`), `{{ if P }}…{{ else }}…{{ end }}`, `{{ range P }}…{{ end }}` (`.` is
//! each element) and `{{-`/`-}}` trimming. The functions are Kopia's: `bytes`, `formatCount`,
//! `bytesDelta`, `bytesDeltaHTML`, `countDelta`, `countDeltaHTML`, `formatTime`,
//! `sortSnapshotManifestsByName`.

use serde_json::Value;

/// A template that cannot be parsed or run.
#[derive(Debug, thiserror::Error)]
#[error("template: {0}")]
pub struct TemplateError(pub String);

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Print(Vec<String>),
    If(Vec<String>, Vec<Node>, Vec<Node>),
    Range(Vec<String>, Vec<Node>),
}

/// Splits a template into text and actions, applying `{{-` and `-}}` trimming.
fn lex(src: &str) -> Result<Vec<(bool, String)>, TemplateError> {
    let mut out: Vec<(bool, String)> = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(i) = rest.find("{{") {
        let mut text = &rest[..i];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[i + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| TemplateError("unclosed action".into()))?;
        let mut action = &after[..end];
        if let Some(a) = action.strip_prefix('-') {
            text = text.trim_end();
            action = a;
        }
        trim_next = false;
        if let Some(a) = action.strip_suffix('-') {
            trim_next = true;
            action = a;
        }
        out.push((false, text.to_string()));
        out.push((true, action.trim().to_string()));
        rest = &after[end + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    out.push((false, text.to_string()));
    Ok(out)
}

fn pipeline(action: &str) -> Vec<String> {
    action
        .split('|')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse_block(
    tokens: &[(bool, String)],
    pos: &mut usize,
) -> Result<(Vec<Node>, Option<String>), TemplateError> {
    let mut nodes = Vec::new();
    while *pos < tokens.len() {
        let (is_action, s) = &tokens[*pos];
        *pos += 1;
        if !is_action {
            if !s.is_empty() {
                nodes.push(Node::Text(s.clone()));
            }
            continue;
        }
        if s == "end" || s == "else" {
            return Ok((nodes, Some(s.clone())));
        }
        if s.starts_with("/*") {
            continue;
        }
        if let Some(cond) = s.strip_prefix("if ") {
            let (then, stop) = parse_block(tokens, pos)?;
            let otherwise = match stop.as_deref() {
                Some("else") => {
                    let (o, stop) = parse_block(tokens, pos)?;
                    if stop.as_deref() != Some("end") {
                        return Err(TemplateError("missing {{end}} after {{else}}".into()));
                    }
                    o
                }
                Some("end") => Vec::new(),
                _ => return Err(TemplateError("missing {{end}} of {{if}}".into())),
            };
            nodes.push(Node::If(pipeline(cond), then, otherwise));
        } else if let Some(over) = s.strip_prefix("range ") {
            let (body, stop) = parse_block(tokens, pos)?;
            if stop.as_deref() != Some("end") {
                return Err(TemplateError("missing {{end}} of {{range}}".into()));
            }
            nodes.push(Node::Range(pipeline(over), body));
        } else {
            nodes.push(Node::Print(pipeline(s)));
        }
    }
    Ok((nodes, None))
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

impl Template {
    /// Parses `src`.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        let tokens = lex(src)?;
        let mut pos = 0;
        let (nodes, stop) = parse_block(&tokens, &mut pos)?;
        if let Some(s) = stop {
            return Err(TemplateError(format!("unexpected {{{{{s}}}}}")));
        }
        Ok(Template { nodes })
    }

    /// Runs the template over `data`.
    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        run(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

fn run(nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), TemplateError> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Print(p) => out.push_str(&display(&eval(p, dot)?)),
            Node::If(p, then, otherwise) => {
                if truthy(&eval(p, dot)?) {
                    run(then, dot, out)?;
                } else {
                    run(otherwise, dot, out)?;
                }
            }
            Node::Range(p, body) => {
                if let Value::Array(items) = eval(p, dot)? {
                    for item in &items {
                        run(body, item, out)?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn display(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn field(dot: &Value, path: &str) -> Result<Value, TemplateError> {
    if path == "." {
        return Ok(dot.clone());
    }
    let Some(rest) = path.strip_prefix('.') else {
        return Err(TemplateError(format!("unknown operand {path:?}")));
    };
    let mut v = dot;
    for name in rest.split('.') {
        v = match v.get(name) {
            Some(x) => x,
            None => return Ok(Value::Null),
        };
    }
    Ok(v.clone())
}

fn eval(p: &[String], dot: &Value) -> Result<Value, TemplateError> {
    let Some((first, funcs)) = p.split_first() else {
        return Err(TemplateError("empty action".into()));
    };
    let mut v = field(dot, first)?;
    for f in funcs {
        v = apply(f, &v)?;
    }
    Ok(v)
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_f64().map(|f| f as i64))
        .unwrap_or(0)
}

/// Kopia's byte sizes: base 10, `KB`, `MB`, … with one decimal (`1.5 MB`), bytes as `N B`.
pub fn bytes_string(v: i64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB", "PB", "EB"];
    let mut f = v.unsigned_abs() as f64;
    let sign = if v < 0 { "-" } else { "" };
    if f < 1000.0 {
        return format!("{sign}{} B", v.unsigned_abs());
    }
    let mut i = 0;
    while f >= 1000.0 && i + 1 < units.len() {
        f /= 1000.0;
        i += 1;
    }
    format!("{sign}{f:.1} {}", units[i])
}

fn apply(f: &str, v: &Value) -> Result<Value, TemplateError> {
    let s = match f {
        "bytes" => bytes_string(int(v)),
        "formatCount" => int(v).to_string(),
        "bytesDelta" => match int(v) {
            0 => String::new(),
            n if n > 0 => format!(" (+{})", bytes_string(n)),
            n => format!(" (-{})", bytes_string(-n)),
        },
        "bytesDeltaHTML" => match int(v) {
            0 => String::new(),
            n if n > 0 => format!(
                " <span class='increase'>(&#x2191; {})</span>",
                bytes_string(n)
            ),
            n => format!(
                " <span class='decrease'>(&#x2193; {})</span>",
                bytes_string(-n)
            ),
        },
        "countDelta" => match int(v) {
            0 => String::new(),
            n if n > 0 => format!(" (+{n})"),
            n => format!(" (-{})", -n),
        },
        "countDeltaHTML" => match int(v) {
            0 => String::new(),
            n if n > 0 => format!(" <span class='increase'>(&#x2191; {n})</span>"),
            n => format!(" <span class='decrease'>(&#x2193; {})</span>", -n),
        },
        "formatTime" => {
            let t = v.as_str().unwrap_or_default();
            match chrono::DateTime::parse_from_rfc3339(t) {
                Ok(t) => t
                    .with_timezone(&chrono::Local)
                    .format("%a, %d %b %Y %H:%M:%S %z")
                    .to_string(),
                Err(_) => t.to_string(),
            }
        }
        "sortSnapshotManifestsByName" => {
            let mut items = v.as_array().cloned().unwrap_or_default();
            let key = |m: &Value| {
                let s = &m["Manifest"]["Source"];
                format!(
                    "{}@{}:{}",
                    display(&s["UserName"]),
                    display(&s["Host"]),
                    display(&s["Path"])
                )
            };
            items.sort_by_key(key);
            return Ok(Value::Array(items));
        }
        other => return Err(TemplateError(format!("function {other:?} not defined"))),
    };
    Ok(Value::String(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, d: Value) -> String {
        Template::parse(t).unwrap().execute(&d).unwrap()
    }

    #[test]
    fn fields_pipes_conditions_and_ranges() {
        let d = json!({"Host": "h", "E": {"Size": 1_500_000, "Delta": -2, "Err": ""},
            "L": [{"N": "a"}, {"N": "b"}]});
        assert_eq!(
            render("on {{.Host}}: {{ .E.Size | bytes }}", d.clone()),
            "on h: 1.5 MB"
        );
        assert_eq!(render("{{ .E.Delta | countDelta }}", d.clone()), " (-2)");
        assert_eq!(render("{{if .E.Err}}bad{{else}}ok{{end}}", d.clone()), "ok");
        assert_eq!(render("{{range .L}}[{{.N}}]{{end}}", d.clone()), "[a][b]");
        assert_eq!(render("a  {{- .Host -}}  b", d.clone()), "ahb");
        assert_eq!(render("{{ .Missing.X }}", d), "<no value>");
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(Template::parse("{{if .A}}x").is_err());
        assert!(Template::parse("{{ .A").is_err());
        assert!(Template::parse("x{{end}}").is_err());
        assert!(Template::parse("{{ .A | nope }}")
            .unwrap()
            .execute(&json!({}))
            .is_err());
    }
}
