//! The layering rule that all SQL lives in `src/store/`, checked on the source itself:
//! a string literal that reads like an SQL statement anywhere else fails this test.

use std::path::{Path, PathBuf};

/// Folders allowed to hold SQL besides the store, and why.
const ALLOWED: &[(&str, &str)] = &[
    ("src/store/", "the repositories: this is where SQL belongs"),
    // The bench seeds the database directly (millions of rows, faster than any API) and
    // measures its floor on a scratch database of its own; neither is the product's path.
    (
        "src/bin/satellite-bench/",
        "seeds its own data and floor database",
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The string literals of Rust source (plain and raw), comments skipped. Test modules
/// (from `#[cfg(test)]` on) may seed their own rows and are cut off before scanning.
fn literals(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    let b: Vec<char> = code.chars().collect();
    let (mut i, mut out) = (0, vec![]);
    while i < b.len() {
        match b[i] {
            '/' if b.get(i + 1) == Some(&'/') => {
                while i < b.len() && b[i] != '\n' {
                    i += 1;
                }
            }
            '/' if b.get(i + 1) == Some(&'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == '*' && b[i + 1] == '/') {
                    i += 1;
                }
                i += 2;
            }
            '\'' => {
                // A char literal ('x', '\n', '"') or a lifetime ('a): skip either.
                if b.get(i + 1) == Some(&'\\') {
                    i += 2;
                    while i < b.len() && b[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if b.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            'r' if (b.get(i + 1) == Some(&'"') || b.get(i + 1) == Some(&'#'))
                && (i == 0 || !(b[i - 1].is_alphanumeric() || b[i - 1] == '_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&'"') {
                    i += 1;
                    continue;
                }
                let start = j + 1;
                let mut k = start;
                let close: Vec<char> = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                while k < b.len() && b[k..].iter().take(close.len()).ne(close.iter()) {
                    k += 1;
                }
                out.push(b[start..k.min(b.len())].iter().collect());
                i = k + close.len();
            }
            '"' => {
                let mut k = i + 1;
                let mut s = String::new();
                while k < b.len() && b[k] != '"' {
                    if b[k] == '\\' {
                        k += 1;
                    }
                    if let Some(c) = b.get(k) {
                        s.push(*c);
                    }
                    k += 1;
                }
                out.push(s);
                i = k + 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Whether a literal reads like an SQL statement (keywords in capitals, as the store
/// writes them; prose that says "select from" is not caught).
fn is_sql(s: &str) -> bool {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let update_set = s.match_indices("UPDATE ").any(|(at, _)| {
        let rest = &s[at + 7..];
        let word: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        !word.is_empty() && rest[word.len()..].starts_with(" SET")
    });
    s.find("SELECT ")
        .is_some_and(|at| s[at..].contains(" FROM "))
        || s.contains("INSERT INTO")
        || update_set
        || s.contains("DELETE FROM")
        || s.contains("CREATE TABLE")
        || s.contains("PRAGMA ")
}

#[test]
fn the_scanner_finds_sql_in_literals_and_nowhere_else() {
    let src = r##"
        // SELECT id FROM comments are not code
        let a = "UPDATE links SET state = ?1";
        let b = r#"SELECT x
                   FROM t"#;
        let c = '"'; let d: &'static str = "no sql here";
        #[cfg(test)]
        mod tests { const Q: &str = "DELETE FROM t"; }
    "##;
    let found: Vec<_> = literals(src).into_iter().filter(|l| is_sql(l)).collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(!is_sql("select a license from the list"));
    assert!(is_sql("PRAGMA integrity_check"));
}

#[test]
fn no_sql_outside_the_store() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![];
    rust_files(&root.join("src"), &mut files);
    let mut offenders = vec![];
    for file in files {
        let rel = file
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if ALLOWED.iter().any(|(dir, _)| rel.starts_with(dir)) {
            continue;
        }
        let source = std::fs::read_to_string(&file).unwrap();
        for lit in literals(&source).into_iter().filter(|l| is_sql(l)) {
            let line = lit.lines().next().unwrap_or_default().trim().to_string();
            offenders.push(format!("{rel}: {line}"));
        }
    }
    assert!(
        offenders.is_empty(),
        "SQL belongs in src/store/ (a repository function with a typed row):\n{}",
        offenders.join("\n")
    );
}
