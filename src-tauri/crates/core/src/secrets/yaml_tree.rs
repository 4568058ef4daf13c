//! A YAML document as SOPS reads it (getsops/sops `stores/yaml/store.go`, which decodes each
//! scalar with go-yaml v3 into `interface{}`): mappings keep their order, because the MAC hashes
//! values in document order, and each scalar gets the type go-yaml would give it, because the MAC
//! hashes an unencrypted value's Go rendering (`sops.go` `ToBytes`: `True`, `8080`, `1.5`).
//! Comments are left out: SOPS keeps them but never hashes them.

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle};

/// The most nodes a document may expand to, aliases counted in full: far more than any secrets
/// file holds, and a bound on what a chain of aliases (`&a [*b, *b, …]`) can make us build.
const MAX_NODES: usize = 1 << 20;

/// A node of the document. Values are the document's text, decrypted or not: no `Debug`, so no
/// log shows one.
#[derive(Clone)]
pub(crate) enum Node {
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
    Scalar(Scalar),
}

/// A scalar with the type SOPS sees (go-yaml v3's resolution of an untagged plain scalar; quoted
/// and block scalars are strings).
#[derive(Clone, PartialEq)]
pub(crate) enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// Only from decryption: SOPS's `bytes` and `time` types (the text as SOPS wrote it).
    Bytes(Vec<u8>),
    Time(String),
}

/// Why a document is not one SOPS reads, in a clause (never quoting a value).
pub(crate) type Why = String;

/// The one document in `text`, whose root must be a mapping (SOPS refuses a sequence or a scalar
/// at the top).
pub(crate) fn parse(text: &str) -> Result<Vec<(String, Node)>, Why> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder {
        events: &mut parser,
        anchors: HashMap::new(),
        nodes: 0,
    };
    let mut docs = Vec::new();
    while let Some(event) = builder.next()? {
        match event {
            Event::DocumentStart(..) => {
                let root = match builder.next()? {
                    Some(Event::DocumentEnd) => None,
                    Some(event) => Some(builder.node(event)?),
                    None => return Err("it ends inside a document".into()),
                };
                docs.push(root);
            }
            Event::StreamEnd => break,
            _ => {}
        }
    }
    match docs.len() {
        1 => {}
        0 => return Err("it holds no YAML document".into()),
        n => {
            return Err(format!(
                "it holds {n} YAML documents; labflash reads single-document SOPS files"
            ))
        }
    }
    match docs.pop().flatten() {
        Some(Node::Map(items)) => Ok(items),
        None | Some(Node::Scalar(Scalar::Null)) => Err("it is empty".into()),
        Some(_) => Err("its top level is not a mapping".into()),
    }
}

struct Builder<'p, 'i> {
    events: &'p mut Parser<'i, granit_parser::StrInput<'i>>,
    /// Each anchored node, with how many nodes it counts for.
    anchors: HashMap<usize, (Node, usize)>,
    /// Nodes built so far, against [`MAX_NODES`].
    nodes: usize,
}

impl<'i> Builder<'_, 'i> {
    fn next(&mut self) -> Result<Option<Event<'i>>, Why> {
        match self.events.next() {
            None => Ok(None),
            Some(Ok((event, _))) => Ok(Some(event)),
            Some(Err(e)) => Err(format!(
                "it is not valid YAML ({} on line {})",
                e.info(),
                e.marker().line()
            )),
        }
    }

    fn expect_next(&mut self) -> Result<Event<'i>, Why> {
        self.next()?
            .ok_or_else(|| "it ends in the middle".to_string())
    }

    /// The node `event` starts (reading the events of its children).
    fn node(&mut self, event: Event<'i>) -> Result<Node, Why> {
        let first = self.nodes;
        self.count(1)?;
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.map(|t| (t.handle().to_string(), t.suffix().to_string()));
                (Node::Scalar(resolve(&text, style, tag)?), anchor)
            }
            Event::SequenceStart(_, anchor, _) => {
                let mut items = Vec::new();
                loop {
                    match self.expect_next()? {
                        Event::SequenceEnd => break,
                        event => items.push(self.node(event)?),
                    }
                }
                (Node::Seq(items), anchor)
            }
            Event::MappingStart(_, anchor, _) => {
                let mut items: Vec<(String, Node)> = Vec::new();
                loop {
                    let key = match self.expect_next()? {
                        Event::MappingEnd => break,
                        event => self.node(event)?,
                    };
                    // SOPS takes string keys only ("Only string keys are supported").
                    let Node::Scalar(Scalar::Str(key)) = key else {
                        return Err("a mapping has a key that is not a string".into());
                    };
                    if items.iter().any(|(k, _)| *k == key) {
                        return Err(format!("the key {key:?} appears twice in one mapping"));
                    }
                    let event = self.expect_next()?;
                    items.push((key, self.node(event)?));
                }
                (Node::Map(items), anchor)
            }
            Event::Alias(id) => {
                let size = self
                    .anchors
                    .get(&id)
                    .map(|(_, size)| *size)
                    .ok_or_else(|| "an alias names no anchor before it".to_string())?;
                // Counted before it is copied.
                self.count(size)?;
                let node = self.anchors[&id].0.clone();
                return Ok(node);
            }
            _ => return Err("it has a YAML construct SOPS does not read".into()),
        };
        if anchor != 0 {
            self.anchors
                .insert(anchor, (node.clone(), self.nodes - first));
        }
        Ok(node)
    }

    fn count(&mut self, more: usize) -> Result<(), Why> {
        self.nodes = self.nodes.saturating_add(more);
        if self.nodes > MAX_NODES {
            return Err(format!(
                "it expands to more than {MAX_NODES} values (through its aliases)"
            ));
        }
        Ok(())
    }
}

/// The type go-yaml v3 gives a scalar decoded into `interface{}` (its `resolve.go`): plain
/// scalars may be null, booleans (YAML 1.2's spellings only), integers (any base `strconv`
/// takes, `_` ignored) or floats; timestamps stay strings; quoted and block scalars are strings.
fn resolve(text: &str, style: ScalarStyle, tag: Option<(String, String)>) -> Result<Scalar, Why> {
    const CORE: &str = "tag:yaml.org,2002:";
    match tag.as_ref().map(|(h, s)| (h.as_str(), s.as_str())) {
        None => {}
        Some((CORE, "str")) => return Ok(Scalar::Str(text.to_string())),
        Some((CORE, "null" | "bool" | "int" | "float")) => {}
        Some((_, "")) => {}
        Some(_) => return Err("a value carries a YAML tag labflash does not read".into()),
    }
    if style != ScalarStyle::Plain && tag.is_none() {
        return Ok(Scalar::Str(text.to_string()));
    }
    Ok(match text {
        "" | "~" | "null" | "Null" | "NULL" => Scalar::Null,
        "true" | "True" | "TRUE" => Scalar::Bool(true),
        "false" | "False" | "FALSE" => Scalar::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Scalar::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Scalar::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Scalar::Float(f64::NAN),
        _ => number(text).unwrap_or_else(|| Scalar::Str(text.to_string())),
    })
}

/// An integer as Go's `strconv.ParseInt(s, 0, 64)` reads it once go-yaml drops `_`, else a float
/// of YAML's float form.
fn number(text: &str) -> Option<Scalar> {
    let first = text.chars().next()?;
    if !(first.is_ascii_digit() || matches!(first, '-' | '+' | '.')) {
        return None;
    }
    let plain = text.replace('_', "");
    if let Some(int) = parse_int(&plain) {
        return Some(Scalar::Int(int));
    }
    is_yaml_float(&plain)
        .then(|| plain.parse::<f64>().ok())
        .flatten()
        .map(Scalar::Float)
}

fn parse_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(rest) = lower.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = lower.strip_prefix("0o") {
        (8, rest)
    } else if let Some(rest) = lower.strip_prefix("0b") {
        (2, rest)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(body, radix).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// go-yaml's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((int, frac)) => digits(int) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(text: &str) -> Scalar {
        let Node::Scalar(s) = parse(&format!("k: {text}\n")).unwrap().remove(0).1 else {
            panic!("not a scalar")
        };
        s
    }

    #[test]
    fn scalars_get_go_yaml_types() {
        assert!(scalar("8080") == Scalar::Int(8080));
        assert!(scalar("0x1F") == Scalar::Int(31));
        assert!(scalar("1_000") == Scalar::Int(1000));
        assert!(scalar("1.5") == Scalar::Float(1.5));
        assert!(scalar("true") == Scalar::Bool(true));
        assert!(scalar("yes") == Scalar::Str("yes".into()));
        assert!(scalar("\"8080\"") == Scalar::Str("8080".into()));
        assert!(scalar("2026-04-30T00:52:23Z") == Scalar::Str("2026-04-30T00:52:23Z".into()));
        assert!(scalar("~") == Scalar::Null);
        assert!(scalar("!!str 12") == Scalar::Str("12".into()));
    }

    #[test]
    fn keeps_key_order_and_resolves_aliases() {
        let doc = parse("b: &x [1, 2]\na: *x\n").unwrap();
        let keys: Vec<&str> = doc.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a"]);
        assert!(matches!(&doc[1].1, Node::Seq(items) if items.len() == 2));
    }

    #[test]
    fn refuses_what_sops_refuses() {
        assert!(parse("- a\n- b\n").is_err());
        assert!(parse("1: a\n").is_err());
        assert!(parse("a: 1\na: 2\n").is_err());
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
        assert!(parse("a: [\n").is_err());
        // A chain of aliases doubling at each step: refused before it is built.
        let mut bomb = String::from("a0: &a0 [x, x]\n");
        for i in 1..40 {
            bomb.push_str(&format!("a{i}: &a{i} [*a{}, *a{}]\n", i - 1, i - 1));
        }
        assert!(parse(&bomb).is_err_and(|why| why.contains("aliases")));
    }
}
