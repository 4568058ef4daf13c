//! RFC 6901 JSON pointers into a decrypted document, as labctl's field extractor reads them
//! (GilmanLab/platform `tools/labctl/internal/adapters/yamldoc/extractor.go`): `/`-separated
//! tokens with `~1` for `/` and `~0` for `~`, a sequence indexed by a decimal position.

use crate::secrets::yaml_tree::{Node, Scalar};

/// The unescaped tokens of `pointer`. The empty pointer (the whole document) is refused: an
/// IncusOS `secretRef` names one string (labctl: "secret pointer is required for IncusOS string
/// secrets"). `Err` is a clause.
pub(crate) fn tokens(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.trim().is_empty() {
        return Err(
            "is empty; a secretRef needs a pointer to one string, not the whole document".into(),
        );
    }
    let rest = pointer.strip_prefix('/').ok_or("does not start with '/'")?;
    rest.split('/').map(unescape).collect()
}

fn unescape(token: &str) -> Result<String, String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c != '~' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('0') => out.push('~'),
            Some('1') => out.push('/'),
            _ => return Err("has a '~' not followed by 0 or 1".into()),
        }
    }
    Ok(out)
}

/// The string `tokens` select in `root`, and the mapping keys on the way to it (what SOPS's
/// rules look at). `Err` is a clause that never quotes a value.
pub(crate) fn select_string<'a>(
    root: &'a [(String, Node)],
    tokens: &'a [String],
) -> Result<(&'a str, Vec<&'a str>), String> {
    let mut node: Option<&Node> = None;
    let mut keys = Vec::new();
    for token in tokens {
        node = Some(match node {
            None | Some(Node::Map(_)) => {
                keys.push(token.as_str());
                match node {
                    Some(Node::Map(items)) => find(items, token)?,
                    _ => find(root, token)?,
                }
            }
            Some(Node::Seq(items)) => {
                let index = token
                    .parse::<usize>()
                    .ok()
                    .filter(|_| token.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| format!("has {token:?} where a list position is"))?;
                items
                    .get(index)
                    .ok_or_else(|| format!("asks for item {index} of a list of {}", items.len()))?
            }
            Some(Node::Scalar(_)) => return Err(format!("goes into a single value at {token:?}")),
        });
    }
    match node {
        Some(Node::Scalar(Scalar::Str(s))) => Ok((s, keys)),
        Some(other) => Err(format!("selects {}, not a string", what(other))),
        None => Err("selects the whole document, not a string".into()),
    }
}

fn find<'a>(items: &'a [(String, Node)], token: &str) -> Result<&'a Node, String> {
    items
        .iter()
        .find(|(k, _)| k == token)
        .map(|(_, v)| v)
        .ok_or_else(|| format!("names no key {token:?}"))
}

fn what(node: &Node) -> &'static str {
    match node {
        Node::Map(_) => "a mapping",
        Node::Seq(_) => "a list",
        Node::Scalar(Scalar::Null) => "an empty value (null)",
        Node::Scalar(Scalar::Bool(_)) => "a boolean",
        Node::Scalar(Scalar::Int(_) | Scalar::Float(_)) => "a number",
        Node::Scalar(Scalar::Bytes(_)) => "binary data",
        Node::Scalar(Scalar::Time(_)) => "a timestamp",
        Node::Scalar(Scalar::Str(_)) => "a string",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_as_rfc_6901() {
        assert_eq!(tokens("/a~1b/~0c/0").unwrap(), ["a/b", "~c", "0"]);
        assert!(tokens("").is_err());
        assert!(tokens("a").is_err());
        assert!(tokens("/a~2").is_err());
    }
}
