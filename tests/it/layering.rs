//! The layers' import rules, checked on the source tree (docs/architecture.md): `domain` is
//! pure (no I/O layers, no clock), `store` is plain SQL (no principals, no access checks,
//! nothing above it), `service` never reaches into `web`, and pages never call API
//! handlers. A failure names every offending line and the rule it breaks.

use std::path::{Path, PathBuf};

/// One rule broken at one line.
#[derive(Debug, PartialEq, Eq)]
struct Violation {
    file: String,
    line: usize,
    rule: &'static str,
    text: String,
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The code of a line without its comment (a `//` inside a string such as a URL is kept
/// when a quote comes before it).
fn code_of(line: &str) -> &str {
    let t = line.trim_start();
    if t.starts_with("//") {
        return "";
    }
    match line.find("//") {
        Some(i) if !line[..i].contains('"') => &line[..i],
        _ => line,
    }
}

/// How many `super::` lead from a file's module to the crate root: `src/store/x.rs` is
/// `crate::store::x`, so `super::super::` is the crate; `src/store/mod.rs` is
/// `crate::store`, so `super::` is.
fn depth_to_root(rel: &Path) -> usize {
    let parts = rel.components().count();
    if rel.file_name().is_some_and(|n| n == "mod.rs") {
        parts - 1
    } else {
        parts
    }
}

/// The crate-level modules a piece of code names: `crate::web::...`, each name in
/// `crate::{web, store}`, and the same reached by climbing with `super::` to the root.
fn crate_modules_named(code: &str, depth: usize) -> Vec<String> {
    let mut roots = vec!["crate::".to_string()];
    if depth > 0 {
        roots.push("super::".repeat(depth));
    }
    let mut found = vec![];
    for root in &roots {
        let mut rest = code;
        while let Some(i) = rest.find(root.as_str()) {
            // `super::super::` must not be the tail of a longer `super::` chain.
            let before = &rest[..i];
            let after = &rest[i + root.len()..];
            rest = after;
            if root.starts_with("super") && before.ends_with("super::") {
                continue;
            }
            if let Some(group) = after.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for name in inner.split(',') {
                    let name: String = name
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        found.push(name);
                    }
                }
            } else {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        }
    }
    found
}

/// Whether the code names the API handler module from a page (`crate::web::api`,
/// `web::api`, `super::super::api`, or `api` inside a `web::{...}` group).
fn names_api(code: &str) -> bool {
    if code.contains("web::api") || code.contains("super::super::api") {
        return true;
    }
    code.match_indices("web::{").any(|(i, m)| {
        code[i + m.len()..]
            .split('}')
            .next()
            .unwrap_or("")
            .split(',')
            .any(|n| n.trim() == "api" || n.trim().starts_with("api::"))
    })
}

/// Every rule broken in one file; `rel` is its path under `src/`.
fn check_file(rel: &Path, text: &str) -> Vec<Violation> {
    let layer = rel
        .components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .unwrap_or("");
    let in_pages = rel.starts_with("web/pages");
    let depth = depth_to_root(rel);
    let mut out = vec![];
    for (n, line) in text.lines().enumerate() {
        let code = code_of(line);
        if code.trim().is_empty() {
            continue;
        }
        let modules = crate_modules_named(code, depth);
        let names = |m: &str| modules.iter().any(|x| x == m);
        let mut broken = |rule: &'static str| {
            out.push(Violation {
                file: format!("src/{}", rel.display()),
                line: n + 1,
                rule,
                text: line.trim().to_string(),
            })
        };
        match layer {
            "store" => {
                if code.contains("Principal") {
                    broken("store must not see a Principal (take plain ids; check access in service::access)");
                }
                if code.contains("domain::roles") {
                    broken(
                        "store must not import domain::roles (access decisions belong in service)",
                    );
                }
                if names("service") {
                    broken("store must not import crate::service (it sits below the services)");
                }
                if names("web") {
                    broken("store must not import crate::web");
                }
            }
            "domain" => {
                for m in ["store", "web", "service", "sync"] {
                    if names(m) {
                        broken(match m {
                            "store" => "domain must not import crate::store (rules are pure)",
                            "web" => "domain must not import crate::web (rules are pure)",
                            "service" => "domain must not import crate::service (rules are pure)",
                            _ => "domain must not import crate::sync (rules are pure)",
                        });
                    }
                }
                if code.contains("Utc::now") || code.contains("SystemTime::now") {
                    broken("domain must not read the clock (take `now` as an argument)");
                }
            }
            "service" if names("web") => {
                broken("service must not import crate::web (errors convert the other way)");
            }
            _ => {}
        }
        if in_pages && names_api(code) {
            broken("pages must not call API handlers (call the service operation both use)");
        }
    }
    out
}

#[test]
fn the_source_tree_keeps_its_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = rust_files(&src);
    assert!(
        files.len() > 50,
        "expected the crate's sources under {}",
        src.display()
    );
    let mut violations = vec![];
    for path in &files {
        let rel = path.strip_prefix(&src).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        violations.extend(check_file(rel, &text));
    }
    let report: Vec<String> = violations
        .iter()
        .map(|v| format!("  {}:{}: {}\n      {}", v.file, v.line, v.rule, v.text))
        .collect();
    assert!(
        violations.is_empty(),
        "{} layering violation(s):\n{}",
        violations.len(),
        report.join("\n")
    );
}

/// The checker itself catches each rule in the forms code really takes (so a green run
/// above means something), and lets comments and the allowed imports be.
#[test]
fn the_checker_catches_each_rule() {
    let rules = |file: &str, text: &str| -> Vec<&'static str> {
        check_file(Path::new(file), text)
            .into_iter()
            .map(|v| v.rule)
            .collect()
    };
    let store = "store/accounts.rs";
    assert_eq!(
        rules(store, "use crate::domain::{names, Principal};").len(),
        1
    );
    assert_eq!(rules(store, "use crate::domain::roles::Role;").len(), 1);
    assert_eq!(rules(store, "use crate::service::access;").len(), 1);
    assert_eq!(rules(store, "use crate::{service, domain};").len(), 1);
    assert_eq!(rules(store, "use super::super::web::AppError;").len(), 1);
    assert_eq!(rules("store/mod.rs", "use super::web::AppError;").len(), 1);
    assert!(rules(store, "use crate::domain::{names, DomainError, Role};").is_empty());
    assert!(rules(store, "use super::events::{self, NewEvent};").is_empty());
    assert!(rules(store, "// the service checks the Principal").is_empty());
    assert!(rules(store, "let x = 1; // no Principal here").is_empty());

    let domain = "domain/compliance.rs";
    for bad in [
        "use crate::store::accounts;",
        "use crate::web::AppError;",
        "use crate::service::access;",
        "use crate::sync::import;",
        "let now = chrono::Utc::now();",
        "let t = std::time::SystemTime::now();",
    ] {
        assert_eq!(rules(domain, bad).len(), 1, "{bad}");
    }
    assert!(rules(domain, "use super::DomainError;").is_empty());

    let service = "service/accounts.rs";
    assert_eq!(rules(service, "use crate::web::AppError;").len(), 1);
    assert!(rules(service, "use crate::store::accounts;").is_empty());

    let page = "web/pages/sync.rs";
    for bad in [
        "use crate::web::api::sync;",
        "let x = web::api::alerts::load(&state);",
        "use super::super::api::sync as api;",
        "use crate::web::{api, AppError};",
    ] {
        assert_eq!(rules(page, bad).len(), 1, "{bad}");
    }
    assert!(rules(page, "use crate::web::calls::sync::{self as api};").is_empty());
    assert!(rules(page, "use crate::web::{AppError, PageError};").is_empty());
    assert!(
        rules("web/api/sync.rs", "use crate::web::api::List;").is_empty(),
        "the API may use itself"
    );
}

/// The words of states and kinds (their one string mapping lives in the enum's file).
const STATE_WORDS: &[&str] = &[
    "unregistered",
    "pending",
    "registered",
    "connected",
    "disconnected",
    "registration-request",
    "registration-response",
    "sync-request",
    "sync-response",
    "in",
    "out",
    "written",
    "failed",
    "applied",
    "duplicate",
    "rejected",
    "granted",
    "denied",
    "returned",
    "cancelled",
    "authorized",
    "authorization_expired",
    "out_of_compliance",
    "reserved",
    "active",
    "expired",
    "revoked",
];

/// Lines (outside test modules) that compare or match a state word as a string.
fn state_string_comparisons(rel: &Path, text: &str) -> Vec<Violation> {
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = code_of(line);
        let arm = code.trim_start();
        for w in STATE_WORDS {
            let q = format!("\"{w}\"");
            let hit = [
                format!("== {q}"),
                format!("!= {q}"),
                format!("{q} =="),
                format!("{q} !="),
                format!("{q} =>"),
                format!("Some({q})"),
            ]
            .iter()
            .any(|p| code.contains(p.as_str()))
                // A tuple pattern of a match arm (a tuple in a list is data).
                || (arm.starts_with(&format!("({q},")) && arm.contains("=>"));
            if hit {
                out.push(Violation {
                    file: rel.display().to_string(),
                    line: i + 1,
                    rule: "compare states as enums (parse the word once at the edge)",
                    text: line.trim().to_string(),
                });
            }
        }
    }
    out
}

#[test]
fn states_are_compared_as_enums_not_strings() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = vec![];
    for path in rust_files(&src) {
        let rel = path.strip_prefix(&src).unwrap().to_path_buf();
        let text = std::fs::read_to_string(&path).unwrap();
        violations.extend(state_string_comparisons(&rel, &text));
    }
    let report: Vec<String> = violations
        .iter()
        .map(|v| format!("  {}:{}: {}\n      {}", v.file, v.line, v.rule, v.text))
        .collect();
    assert!(
        violations.is_empty(),
        "{} state string comparison(s):\n{}",
        violations.len(),
        report.join("\n")
    );
    // The check itself catches the forms such code takes, and lets the enums be.
    let p = Path::new("sync/x.rs");
    for bad in [
        "if link.state == \"registered\" {",
        "if o.result != \"applied\" {",
        "Some(\"connected\") => true,",
        "(\"granted\", None) => {",
        "\"duplicate\" => 1,",
    ] {
        assert_eq!(state_string_comparisons(p, bad).len(), 1, "{bad}");
    }
    for fine in [
        "LinkState::Pending => \"pending\",",
        "if link.state == LinkState::Registered {",
        "// compares == \"pending\" no more",
        "json!({ \"state\": \"pending\" })",
        "(\"reserved\", \"reservation hold\", \"reservation holds\"),",
        "return Err(wrong_state(\"pending\", state));",
    ] {
        assert!(state_string_comparisons(p, fine).is_empty(), "{fine}");
    }
}
