//! `pattern` is compiled by kube with Go's RE2 `regexp`. Rust's `regex` shares RE2's syntax
//! and linear-time semantics; the one difference that changes results is that Go's `\d`,
//! `\w`, `\s` and `\b` are ASCII-only while Rust's are Unicode-aware, so those are rewritten
//! to their ASCII forms here. Not translated (rare in CRDs): `\Q...\E` quoting, and Go's
//! `\C`, which Rust rejects (such patterns fail to parse here while kube accepts them).

use regex::Regex;

pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&to_ascii_classes(pattern))
}

fn to_ascii_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let replacement = match (next, in_class) {
                    ('d', false) => Some("[0-9]"),
                    ('d', true) => Some("0-9"),
                    ('D', false) => Some("[^0-9]"),
                    ('w', false) => Some("[0-9A-Za-z_]"),
                    ('w', true) => Some("0-9A-Za-z_"),
                    ('W', false) => Some("[^0-9A-Za-z_]"),
                    ('s', false) => Some(r"[\t\n\f\r ]"),
                    ('s', true) => Some(r"\t\n\f\r "),
                    ('S', false) => Some(r"[^\t\n\f\r ]"),
                    ('b', false) => Some(r"(?-u:\b)"),
                    ('B', false) => Some(r"(?-u:\B)"),
                    _ => None,
                };
                match replacement {
                    Some(r) => out.push_str(r),
                    None => {
                        out.push('\\');
                        out.push(next);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A `]` (or `^]`) right after the opening bracket is a literal.
                let rest = chars.as_str();
                if let Some(stripped) = rest.strip_prefix("^]") {
                    out.push_str("^\\]");
                    chars = stripped.chars();
                } else if let Some(stripped) = rest.strip_prefix(']') {
                    out.push_str("\\]");
                    chars = stripped.chars();
                }
            }
            '[' if in_class => {
                // `[:alpha:]` inside a class.
                if chars.as_str().starts_with(':')
                    && let Some(end) = chars.as_str().find(":]")
                {
                    out.push('[');
                    out.push_str(&chars.as_str()[..end + 2]);
                    chars = chars.as_str()[end + 2..].chars();
                    continue;
                }
                out.push_str("\\[");
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        let digits = compile(r"^\d+$").unwrap();
        assert!(digits.is_match("123"));
        assert!(
            !digits.is_match("١٢٣"),
            "Arabic-Indic digits are not \\d in Go"
        );
        let word = compile(r"^[\w.-]+$").unwrap();
        assert!(word.is_match("a_b.c-d"));
        assert!(!word.is_match("é"));
    }

    #[test]
    fn classes_with_brackets_and_posix_names_survive() {
        assert!(compile(r"^[]a]+$").unwrap().is_match("]a"));
        assert!(compile(r"^[[:alpha:]]+$").unwrap().is_match("abc"));
        assert!(compile(r"^[^]]$").unwrap().is_match("a"));
    }

    #[test]
    fn invalid_patterns_fail() {
        assert!(compile("+").is_err());
    }
}
