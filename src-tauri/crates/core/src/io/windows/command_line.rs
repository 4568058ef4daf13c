//! A command line for a program Windows starts with ShellExecuteEx, which takes one string of
//! parameters, not a list: each argument quoted so that the program's C runtime
//! (`CommandLineToArgvW`'s rules) splits it back into the same list.

/// The arguments joined into one parameter string.
pub fn join(args: &[String]) -> String {
    args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
}

/// One argument: as it is when nothing in it needs quoting; otherwise in quotes, with each
/// quote escaped and the backslashes before a quote (or the closing one) doubled.
fn quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '\n', '\u{b}', '"']) {
        return arg.to_string();
    }
    let mut out = String::from('"');
    // The backslashes just copied: doubled if a quote follows them.
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.push_str(&"\\".repeat(backslashes + 1));
                backslashes = 0;
            }
            _ => backslashes = 0,
        }
        out.push(c);
    }
    out.push_str(&"\\".repeat(backslashes));
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `CommandLineToArgvW`'s rules, written from Microsoft's "Parsing C++ command-line
    /// arguments": the reading side of `join`.
    fn split(line: &str) -> Vec<String> {
        let mut args = Vec::new();
        let mut chars = line.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            if chars.peek().is_none() {
                return args;
            }
            let (mut arg, mut quoted) = (String::new(), false);
            while let Some(&c) = chars.peek() {
                if !quoted && (c == ' ' || c == '\t') {
                    break;
                }
                chars.next();
                match c {
                    '\\' => {
                        let mut n = 1;
                        while chars.peek() == Some(&'\\') {
                            chars.next();
                            n += 1;
                        }
                        if chars.peek() == Some(&'"') {
                            arg.push_str(&"\\".repeat(n / 2));
                            if n % 2 == 1 {
                                chars.next();
                                arg.push('"');
                            }
                        } else {
                            arg.push_str(&"\\".repeat(n));
                        }
                    }
                    '"' => quoted = !quoted,
                    c => arg.push(c),
                }
            }
            args.push(arg);
        }
    }

    #[test]
    fn every_argument_comes_back_as_it_was() {
        let cases = [
            vec!["helper", "--target", r"\\.\PhysicalDrive2"],
            vec!["--pipe", r"\\.\pipe\labflash-12-ab"],
            vec![r"C:\Program Files\labflash\", "a b", ""],
            vec![r#"say "hi""#, r#"back\"slash"#, r"end\\", "\ttab"],
        ];
        for case in cases {
            let args: Vec<String> = case.iter().map(|s| s.to_string()).collect();
            assert_eq!(split(&join(&args)), args, "{}", join(&args));
        }
        assert_eq!(
            join(&["helper".into(), r"\\.\PhysicalDrive2".into()]),
            r"helper \\.\PhysicalDrive2",
            "a plain argument is left as it is"
        );
    }
}
