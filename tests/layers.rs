//! Layering: every top-level module under `src/` refers only to its own layer and the layers
//! below it, as listed in [`LAYERS`].
//!
//! What it checks. A file's module is its first path component under `src/`
//! (`src/pipeline/auth/jwt.rs` is `pipeline`, `src/gateway.rs` is `gateway`); `src/lib.rs`
//! (the crate root: module declarations and re-exports) and `src/main.rs` (the binary, which
//! goes through `manifold::`) are not checked. A reference is a path in code that names a
//! top-level module:
//! - `crate::<module>` anywhere: `use`, `pub use`, each name of a grouped
//!   `use crate::{a::b, c::{d, e}}` (over several lines too), and inline paths in expressions
//!   and types (`crate::router::route(..)`, `Arc<crate::pipeline::Principal>`);
//! - `super::` chains that climb out of the file's top-level module to the crate root and then
//!   name a module (in `src/x/mod.rs`, `super::y` is `crate::y`; in `src/x/a.rs`,
//!   `super::super::y` is; inline `mod tests { .. }` blocks add a level). A file loaded with
//!   `#[path = ".."]` is placed by its directory position.
//!
//! `crate::<item>` where the item is not a top-level module (something `lib.rs` defines or
//! re-exports) reaches the crate root, which sits above every layer. Comments, doc comments,
//! string, char and raw-string literals are blanked out before the scan, so prose and log text
//! never count; `#[cfg(test)]` code counts like any other. Every top-level module under `src/`
//! must be in [`LAYERS`], and every entry of [`LAYERS`] must exist under `src/`. All problems
//! are listed at once, sorted by file and line, then the test fails with their count.
//!
//! Run it: `cargo test --test layers`. The self-tests at the bottom feed synthetic sources
//! through the same functions, so a scanner that stopped seeing references fails too.
//!
//! Add a layer: create the module under `src/`, then insert its name in [`LAYERS`] at its
//! height (the list runs bottom to top: a module may use its own line and every line before
//! it) with a one-line comment saying what it holds. Moving a module to another layer is
//! moving its line.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// The layers, bottom to top. A module may refer to its own layer and to those listed before it.
#[rustfmt::skip] // a table: one aligned line per layer
const LAYERS: &[&str] = &[
    "alloc",      // the global allocator the binaries install; uses nothing of the crate
    "sync",       // small concurrency helpers the layers share
    "protocol",   // wire: JSON-RPC, codes, methods, the Era type, envelope, headers
    "config",     // data only: raw shapes, validated model, every stage's config shape
    "net",        // outbound HTTP clients and the shared Redis; no CA certificates is not fatal
    "telemetry",  // tracing subscriber, OTLP export, span helpers
    "aggregate",  // pure: names, seals, cursors, URI templates, catalog data and merge (no I/O)
    "session",    // client-side state: sessions and their store, event logs, principals, identity headers, task records and their store
    "upstream",   // transports, peer, supervisor, catalog fetching, the upstream table
    "relay",      // the way back: upstream notifications and requests to the right client
    "pipeline",   // the Stage trait, the chain and its terminal handle, the middleware stages
    "router",     // the pipeline's terminal: lists, calls, MRTR, initialize/discover
    "tasks",      // the tasks stage, wrapped-task runner, passthrough, task methods
    "gateway",    // the composition root that builds and holds the parts above
    "downstream", // the client faces: Streamable HTTP, HTTP+SSE, stdio
    "serve",      // run(config, listener, shutdown): the server's lifecycle
    "demo",       // the built-in demo MCP server (shares only the wire)
    "cli",        // the commands
];

#[test]
fn modules_refer_only_to_their_own_layer_and_below() {
    let files = read_sources(Path::new(env!("CARGO_MANIFEST_DIR")), "src");
    assert!(!files.is_empty(), "no .rs files found under src/");
    let problems = check(LAYERS, &files);
    let n = problems.len();
    if n > 0 {
        panic!(
            "{n} layering problems (the layer table is at the top of tests/layers.rs):\n{}\n{n} layering problems",
            problems.join("\n")
        );
    }
}

/// Every problem in `files` (path relative to the crate, source) against `layers` (bottom to
/// top), one line each, sorted: table problems first, then by file and line.
fn check(layers: &[&str], files: &[(String, String)]) -> Vec<String> {
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|(path, _)| top_module(path))
        .collect();
    let layer = |name: &str| layers.iter().position(|l| *l == name).map(|i| i + 1);
    // (file, line, text): sorting this sorts by file, then by line as a number.
    let mut problems: BTreeSet<(String, usize, String)> = BTreeSet::new();
    for module in &modules {
        if layer(module).is_none() {
            let text = format!("{module}: add {module} to the layer table in tests/layers.rs");
            problems.insert((String::new(), 0, text));
        }
    }
    for entry in layers {
        if !modules.contains(*entry) {
            let text = format!(
                "{entry}: in the layer table but not under src/ (no src/{entry}.rs or src/{entry}/): \
                 create it or take it out of the table"
            );
            problems.insert((String::new(), 0, text));
        }
    }
    for (path, source) in files {
        let Some(module) = top_module(path) else {
            continue;
        };
        let Some(own) = layer(&module) else { continue };
        let lines: Vec<&str> = source.lines().collect();
        for (line, target) in references(&module_path(path), source, &modules) {
            let above = match target {
                Target::Root => "the crate root (above every layer)".to_string(),
                Target::Module(name) => match layer(&name) {
                    Some(theirs) if theirs > own => format!("{name} (layer {theirs})"),
                    _ => continue,
                },
            };
            let code = lines.get(line - 1).map_or("", |l| l.trim());
            let text =
                format!("{path}:{line}: {module} (layer {own}) reaches up to {above}: {code}");
            problems.insert((path.clone(), line, text));
        }
    }
    problems.into_iter().map(|(_, _, text)| text).collect()
}

/// Where a reference lands: a top-level module, or the crate root itself.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Module(String),
    Root,
}

/// The top-level module of a file under `src/`; `None` for `src/lib.rs` and `src/main.rs`.
fn top_module(path: &str) -> Option<String> {
    let rest = path.strip_prefix("src/")?;
    match rest.split_once('/') {
        Some((dir, _)) => Some(dir.to_string()),
        None if rest == "lib.rs" || rest == "main.rs" => None,
        None => Some(rest.trim_end_matches(".rs").to_string()),
    }
}

/// The module path a file has by its position: `src/a/b.rs` and `src/a/b/mod.rs` are `[a, b]`.
fn module_path(path: &str) -> Vec<String> {
    let rest = path
        .strip_prefix("src/")
        .unwrap_or(path)
        .trim_end_matches(".rs");
    let mut parts: Vec<String> = rest.split('/').map(str::to_string).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The references to top-level modules (or the crate root) in `source`, a file whose module
/// path is `path`, with their 1-based line numbers. `modules` are the crate's top-level modules.
fn references(path: &[String], source: &str, modules: &BTreeSet<String>) -> Vec<(usize, Target)> {
    let toks = tokens(&blank(source));
    let word = |k: usize| match toks.get(k) {
        Some((Tok::Word(w), _)) => Some(w.as_str()),
        _ => None,
    };
    let colons = |k: usize| matches!(toks.get(k), Some((Tok::Colons, _)));
    let mut found = Vec::new();
    // Inline `mod name { .. }` blocks around the current token, each with its brace depth.
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    for k in 0..toks.len() {
        match word(k) {
            Some("mod")
                if word(k + 1).is_some() && matches!(toks.get(k + 2), Some((Tok::Open, _))) =>
            {
                inline.push(depth + 1)
            }
            Some("crate") if colons(k + 1) => found.extend(from_root(&toks, k + 2, modules)),
            Some("super") if colons(k + 1) && !(k > 0 && colons(k - 1)) => {
                let (mut climbs, mut j) = (1, k + 2);
                while word(j) == Some("super") && colons(j + 1) {
                    (climbs, j) = (climbs + 1, j + 2);
                }
                // Fewer climbs stay inside the file's own top-level module; more are not Rust.
                if climbs == path.len() + inline.len() {
                    found.extend(from_root(&toks, j, modules));
                }
            }
            _ => match toks[k].0 {
                Tok::Open => depth += 1,
                Tok::Close => {
                    if inline.last() == Some(&depth) {
                        inline.pop();
                    }
                    depth = depth.saturating_sub(1);
                }
                _ => {}
            },
        }
    }
    found
}

/// What a path names right after the crate root (`crate::` or enough `super::`s), starting at
/// token `k`: one name, a `*`, or a `{..}` group whose items each name one.
fn from_root(toks: &[(Tok, usize)], k: usize, modules: &BTreeSet<String>) -> Vec<(usize, Target)> {
    // A name that is not a top-level module is an item of lib.rs (or `self`): the root.
    let target = |name: &str| {
        if modules.contains(name) {
            Target::Module(name.to_string())
        } else {
            Target::Root
        }
    };
    let mut found = Vec::new();
    let mut level = 0;
    let mut at_item = false;
    for (tok, line) in toks.iter().skip(k) {
        match tok {
            Tok::Word(name) if level == 0 => return vec![(*line, target(name))],
            Tok::Star if level == 0 => return vec![(*line, Target::Root)],
            Tok::Open => {
                level += 1;
                at_item = level == 1;
            }
            _ if level == 0 => break,
            Tok::Close => {
                level -= 1;
                if level == 0 {
                    break;
                }
                at_item = false;
            }
            Tok::Comma => at_item = level == 1,
            Tok::Word(name) if at_item => {
                found.push((*line, target(name)));
                at_item = false;
            }
            Tok::Star if at_item => {
                found.push((*line, Target::Root));
                at_item = false;
            }
            _ => at_item = false,
        }
    }
    found
}

/// The tokens the scan needs, each with its 1-based line.
#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Colons,
    Open,
    Close,
    Comma,
    Star,
    Other,
}

fn tokens(code: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = code.chars().collect();
    let mut toks = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        let mut next = i + 1;
        let tok = match c {
            '\n' => {
                line += 1;
                i = next;
                continue;
            }
            c if c.is_whitespace() => {
                i = next;
                continue;
            }
            c if is_ident(c) => {
                while next < chars.len() && is_ident(chars[next]) {
                    next += 1;
                }
                Tok::Word(chars[i..next].iter().collect())
            }
            ':' if chars.get(i + 1) == Some(&':') => {
                next = i + 2;
                Tok::Colons
            }
            '{' => Tok::Open,
            '}' => Tok::Close,
            ',' => Tok::Comma,
            '*' => Tok::Star,
            _ => Tok::Other,
        };
        toks.push((tok, line));
        i = next;
    }
    toks
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `source` with comments and string, char and raw-string literals replaced by spaces.
/// Newlines stay, so line numbers are those of the source.
fn blank(source: &str) -> String {
    let s: Vec<char> = source.chars().collect();
    let mut out = s.clone();
    let mut i = 0;
    while i < s.len() {
        let at = |k: usize| s.get(k).copied().unwrap_or('\0');
        let word_start = i == 0 || !is_ident(s[i - 1]);
        let end = match s[i] {
            '/' if at(i + 1) == '/' => (i..s.len()).find(|&k| s[k] == '\n').unwrap_or(s.len()),
            '/' if at(i + 1) == '*' => {
                let (mut k, mut nesting) = (i + 2, 1);
                while k < s.len() && nesting > 0 {
                    match (s[k], at(k + 1)) {
                        ('/', '*') => (k, nesting) = (k + 2, nesting + 1),
                        ('*', '/') => (k, nesting) = (k + 2, nesting - 1),
                        _ => k += 1,
                    }
                }
                k
            }
            '"' => {
                let mut k = i + 1;
                while k < s.len() && s[k] != '"' {
                    k += if s[k] == '\\' { 2 } else { 1 };
                }
                k + 1
            }
            // A char literal ('x', '\n', '\u{..}'), not a lifetime or label ('a, 'outer:).
            '\'' if at(i + 1) == '\\' => (i + 3..s.len())
                .find(|&k| s[k] == '\'')
                .map_or(s.len(), |k| k + 1),
            '\'' if at(i + 2) == '\'' && at(i + 1) != '\'' => i + 3,
            // r"..", r#".."#, br".."; b"..", c".." and b'x' are handled at their quote.
            'r' | 'b' | 'c' if word_start => {
                let mut k = i + usize::from(s[i] != 'r');
                let hashes = if at(k) == 'r' {
                    k += 1;
                    let h = (k..s.len()).take_while(|&j| s[j] == '#').count();
                    k += h;
                    Some(h)
                } else {
                    None
                };
                match hashes {
                    Some(h) if at(k) == '"' => {
                        let closes = |j: usize| s[j] == '"' && (1..=h).all(|d| at(j + d) == '#');
                        (k + 1..s.len())
                            .find(|&j| closes(j))
                            .map_or(s.len(), |j| j + 1 + h)
                    }
                    _ => {
                        i += 1;
                        continue;
                    }
                }
            }
            _ => {
                i += 1;
                continue;
            }
        };
        let end = end.min(s.len());
        for c in &mut out[i..end] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        i = end;
    }
    out.into_iter().collect()
}

/// Every `.rs` file under `root/dir`, as (path relative to `root` with `/`, contents), sorted.
fn read_sources(root: &Path, dir: &str) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(root.join(dir))
        .unwrap_or_else(|e| panic!("reading {dir}: {e}"))
        .map(|entry| entry.expect("a directory entry"))
        .collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = format!("{dir}/{}", entry.file_name().to_string_lossy());
        if entry.file_type().expect("a file type").is_dir() {
            files.extend(read_sources(root, &name));
        } else if name.ends_with(".rs") {
            let source =
                fs::read_to_string(entry.path()).unwrap_or_else(|e| panic!("reading {name}: {e}"));
            files.push((name, source));
        }
    }
    files
}

// Self-tests: synthetic trees through `check`, against a three-layer table.

const TOY: &[&str] = &["low", "mid", "high"];

/// The problems of a toy tree (`src/low.rs`, `src/mid/mod.rs`, `src/high.rs`, all empty) with
/// `path` added, or replaced, holding `source`.
fn toy(path: &str, source: &str) -> Vec<String> {
    let mut files: Vec<(String, String)> = ["src/low.rs", "src/mid/mod.rs", "src/high.rs"]
        .iter()
        .filter(|p| **p != path)
        .map(|p| (p.to_string(), String::new()))
        .collect();
    files.push((path.to_string(), source.to_string()));
    check(TOY, &files)
}

#[test]
fn reports_an_upward_use() {
    assert_eq!(
        toy(
            "src/mid/inner.rs",
            "use std::sync::Arc;\n\nuse crate::high::Thing;\n"
        ),
        ["src/mid/inner.rs:3: mid (layer 2) reaches up to high (layer 3): use crate::high::Thing;"]
    );
    assert_eq!(toy("src/low.rs", "pub use crate::mid::X;").len(), 1);
}

#[test]
fn reports_each_upward_name_of_a_grouped_use() {
    let source = "use crate::{\n    low::A,\n    high::{B, C},\n    mid::{high, D},\n};\nuse crate::{low, high};\n";
    assert_eq!(
        toy("src/mid/mod.rs", source),
        [
            "src/mid/mod.rs:3: mid (layer 2) reaches up to high (layer 3): high::{B, C},",
            "src/mid/mod.rs:6: mid (layer 2) reaches up to high (layer 3): use crate::{low, high};",
        ]
    );
}

#[test]
fn reports_an_upward_inline_path() {
    let source = "fn f(x: Arc<crate::high::T>) {\n    let y = crate :: high::make(x);\n}\n";
    assert_eq!(
        toy("src/low.rs", source),
        [
            "src/low.rs:1: low (layer 1) reaches up to high (layer 3): fn f(x: Arc<crate::high::T>) {",
            "src/low.rs:2: low (layer 1) reaches up to high (layer 3): let y = crate :: high::make(x);",
        ]
    );
}

#[test]
fn reports_super_chains_that_climb_to_the_root() {
    assert_eq!(
        toy(
            "src/mid/inner.rs",
            "use super::super::high::T;\nuse super::sibling::U;\n"
        ),
        [
            "src/mid/inner.rs:1: mid (layer 2) reaches up to high (layer 3): use super::super::high::T;"
        ]
    );
    assert_eq!(
        toy("src/mid/mod.rs", "fn f() { super::high::g() }").len(),
        1
    );
    // An inline module adds a level: here two `super`s stay inside `mid`, three climb out.
    let source = "#[cfg(test)]\nmod tests {\n    use super::super::high;\n    use super::super::super::high::T;\n}\n";
    assert_eq!(
        toy("src/mid/inner.rs", source),
        [
            "src/mid/inner.rs:4: mid (layer 2) reaches up to high (layer 3): use super::super::super::high::T;"
        ]
    );
}

#[test]
fn reports_test_code_and_the_crate_root() {
    let source =
        "#[cfg(test)]\nmod tests {\n    use crate::high::X;\n}\nfn f() { crate::serve() }\n";
    assert_eq!(
        toy("src/mid/mod.rs", source),
        [
            "src/mid/mod.rs:3: mid (layer 2) reaches up to high (layer 3): use crate::high::X;",
            "src/mid/mod.rs:5: mid (layer 2) reaches up to the crate root (above every layer): fn f() { crate::serve() }",
        ]
    );
}

#[test]
fn reports_a_module_missing_from_the_table_and_an_entry_missing_from_src() {
    assert_eq!(
        toy("src/stray/mod.rs", "use crate::high::X;"),
        ["stray: add stray to the layer table in tests/layers.rs"]
    );
    let files = [("src/low.rs".to_string(), String::new())];
    let problems = check(&["low", "ghost"], &files);
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with("ghost: in the layer table but not under src/"),
        "{problems:?}"
    );
}

#[test]
fn ignores_comments_literals_and_downward_references() {
    let source = r##"//! The mid layer; crate::high is above it.
/// See [`crate::high::Thing`].
// use crate::high::Thing;
/* use crate::high::Thing; /* nested: crate::high */ still a comment: crate::high */
use crate::low::A;
use crate::mid::B;
use crate::{low::{high, C}, mid::D};
fn f<'a>(x: &'a str) -> char {
    let quote = '"';
    log("crate::high::Thing and \"crate::high\"");
    let raw = r#"crate::high "quoted" crate::high"#;
    let bytes = br"crate::high\";
    let escaped = '\'';
    crate::low::g(x, b"crate::high", super::mid::h());
    '}'
}
"##;
    assert_eq!(toy("src/mid/mod.rs", source), Vec::<String>::new());
}

#[test]
fn blanking_keeps_lines_and_code() {
    let source = "a /* x\ny */ b // z\n\"s\\\"t\" 'c' 'l: loop {}";
    assert_eq!(blank(source), "a     \n     b     \n           'l: loop {}");
}
