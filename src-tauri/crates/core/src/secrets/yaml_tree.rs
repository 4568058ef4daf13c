//! A YAML document as SOPS reads it (getsops/sops `stores/yaml/store.go`, which decodes each
//! scalar with go-yaml v3 into `interface{}`): mappings keep their order, because the MAC hashes
//! values in document order, and each scalar gets the type go-yaml would give it, because the MAC
//! hashes an unencrypted value's Go rendering (`sops.go` `ToBytes`: `True`, `8080`, `1.5`).
//! Comments are left out: SOPS keeps them but never hashes them.

use std::collections::HashSet;

use granit_parser::{Event, Parser, ScalarStyle};

/// The most nodes a document may hold: far more than any secrets file holds.
const MAX_NODES: usize = 1 << 20;

/// The deepest a document may nest: far deeper than any secrets file, and shallow enough that
/// building, walking and dropping the tree (each recursive) fit in a small thread stack, even
/// unoptimized (about 5 KiB a level). Checked before a deeper collection is read.
const MAX_DEPTH: usize = 64;

/// A node of the document. Values are the document's text, decrypted or not: no `Debug`, so no
/// log shows one. No `Clone` either, and no aliases are read: a tree is as deep as its text,
/// at most [`MAX_DEPTH`] levels.
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
        nodes: 0,
        depth: 0,
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

const ALIASES: &str =
    "it uses YAML anchors or aliases (& or *), which sops never writes (it writes every value out)";

struct Builder<'p, 'i> {
    events: &'p mut Parser<'i, granit_parser::StrInput<'i>>,
    /// Nodes built so far, against [`MAX_NODES`].
    nodes: usize,
    /// Collections open around the node being built, against [`MAX_DEPTH`].
    depth: usize,
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

    /// The node `event` starts (reading the events of its children). Anchors and aliases are
    /// refused: sops writes every tree expanded, so a document sops wrote has none, and an alias
    /// would let a small text make a tree deeper or larger than its text.
    fn node(&mut self, event: Event<'i>) -> Result<Node, Why> {
        self.count(1)?;
        match &event {
            Event::Scalar(_, _, anchor, _)
            | Event::SequenceStart(_, anchor, _)
            | Event::MappingStart(_, anchor, _)
                if *anchor != 0 =>
            {
                return Err(ALIASES.into())
            }
            Event::Alias(_) => return Err(ALIASES.into()),
            _ => {}
        }
        Ok(match event {
            Event::Scalar(text, style, _, tag) => {
                let tag = tag.map(|t| (t.handle().to_string(), t.suffix().to_string()));
                Node::Scalar(resolve(&text, style, tag)?)
            }
            Event::SequenceStart(..) | Event::MappingStart(..) if self.depth >= MAX_DEPTH => {
                return Err(format!(
                    "it nests deeper than {MAX_DEPTH} levels; labflash reads flatter SOPS documents"
                ))
            }
            Event::SequenceStart(..) => {
                self.depth += 1;
                let mut items = Vec::new();
                loop {
                    match self.expect_next()? {
                        Event::SequenceEnd => break,
                        event => items.push(self.node(event)?),
                    }
                }
                self.depth -= 1;
                Node::Seq(items)
            }
            Event::MappingStart(..) => {
                self.depth += 1;
                let mut items: Vec<(String, Node)> = Vec::new();
                let mut seen: HashSet<String> = HashSet::new();
                loop {
                    let key = match self.expect_next()? {
                        Event::MappingEnd => break,
                        event => self.node(event)?,
                    };
                    // SOPS takes string keys only ("Only string keys are supported").
                    let Node::Scalar(Scalar::Str(key)) = key else {
                        return Err("a mapping has a key that is not a string".into());
                    };
                    if !seen.insert(key.clone()) {
                        return Err(format!("the key {key:?} appears twice in one mapping"));
                    }
                    let event = self.expect_next()?;
                    items.push((key, self.node(event)?));
                }
                self.depth -= 1;
                Node::Map(items)
            }
            _ => return Err("it has a YAML construct SOPS does not read".into()),
        })
    }

    fn count(&mut self, more: usize) -> Result<(), Why> {
        self.nodes = self.nodes.saturating_add(more);
        if self.nodes > MAX_NODES {
            return Err(format!("it holds more than {MAX_NODES} values"));
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
    fn keeps_key_order() {
        let doc = parse("b: [1, 2]\na: x\n").unwrap();
        let keys: Vec<&str> = doc.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a"]);
        assert!(matches!(&doc[0].1, Node::Seq(items) if items.len() == 2));
    }

    /// The review's repro (M2): anchors stacking 250 levels each overflowed the stack while the
    /// tree was built, cloned and dropped. Now refused at the first anchor, on a test thread's
    /// 2 MiB stack.
    #[test]
    fn refuses_anchors_and_aliases() {
        let mut deep = String::from("a0: &a0 x\n");
        for i in 1..=80 {
            deep.push_str(&format!(
                "a{i}: &a{i} {}*a{}{}\n",
                "[".repeat(250),
                i - 1,
                "]".repeat(250)
            ));
        }
        for doc in [
            deep.as_str(),
            "a: &a x\n",
            "a: &a [1]\nb: [*a, *a]\n",
            "a: &a {k: v}\nb:\n  <<: *a\n",
        ] {
            assert!(parse(doc).is_err_and(|why| why.contains("anchors or aliases")));
        }
        // An alias to no anchor: granit refuses it.
        assert!(parse("a: x\nb: *a\n").is_err());
    }

    /// Without aliases the tree is as deep as the text, and the text at most MAX_DEPTH levels
    /// deep: a deeper one is refused cleanly, before it is built, and the deepest one allowed
    /// is built and dropped on a 1 MiB stack (half a test thread's or a tokio worker's; an
    /// unoptimized build takes about 5 KiB a level, so granit's own limits, 255 flow and 255
    /// block levels, overflowed 2 MiB).
    #[test]
    fn deep_nesting_is_refused_cleanly_on_a_small_stack() {
        let flow = |n: usize| format!("a: {}x{}\n", "[".repeat(n), "]".repeat(n));
        let block = |n: usize| -> String {
            (0..n)
                .map(|i| format!("{}k:\n", " ".repeat(i)))
                .collect::<String>()
                + &" ".repeat(n)
                + "x\n"
        };
        std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                for deep in [
                    flow(MAX_DEPTH),
                    flow(100_000),
                    block(MAX_DEPTH + 1),
                    block(600),
                ] {
                    // Ours, or granit's own limit when its scanner sees it first.
                    let why = parse(&deep).err().unwrap_or_default();
                    assert!(
                        why.contains("nests deeper") || why.contains("recursion limit"),
                        "{why}"
                    );
                }
                drop(parse(&flow(MAX_DEPTH - 1)).unwrap());
                drop(parse(&block(MAX_DEPTH)).unwrap());
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// L3: duplicate keys are found with a set, not by scanning each mapping (80,000 keys took
    /// 25 s).
    #[test]
    fn many_keys_parse_quickly() {
        let doc: String = (0..80_000).map(|i| format!("key{i:07}: 1\n")).collect();
        let start = std::time::Instant::now();
        assert_eq!(parse(&doc).unwrap().len(), 80_000);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn refuses_what_sops_refuses() {
        assert!(parse("- a\n- b\n").is_err());
        assert!(parse("1: a\n").is_err());
        assert!(parse("a: 1\na: 2\n").is_err());
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
        assert!(parse("a: [\n").is_err());
        // A chain of aliases doubling at each step: refused at its first anchor.
        let mut bomb = String::from("a0: &a0 [x, x]\n");
        for i in 1..40 {
            bomb.push_str(&format!("a{i}: &a{i} [*a{}, *a{}]\n", i - 1, i - 1));
        }
        assert!(parse(&bomb).is_err_and(|why| why.contains("aliases")));
    }
}
