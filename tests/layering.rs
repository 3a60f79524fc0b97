//! The module layering of docs/ARCHITECTURE.md, checked on the source text of `src/`:
//! every `crate::` path names the top-level module it imports from; a module may import
//! from its own layer or a layer below, never from one above, and the top-level modules
//! form no import cycle. Also the size limits: no file in `src/` over 800 lines, no
//! function over 150 lines (counted from its `fn` line to its closing brace).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first (docs/ARCHITECTURE.md). A new top-level module gets a row here
/// and a line in the document.
const LAYERS: &[(&str, &[&str])] = &[
    ("primitives", &["primitives"]),
    ("compute and communication", &["compute", "comm", "exit"]),
    (
        "core and I/O",
        &["core", "uvh5", "ms", "progress", "discover"],
    ),
    (
        "stages",
        &[
            "flag",
            "calibrate",
            "imaging",
            "simulate",
            "plan",
            "products",
            "photometry",
            "mosaic",
            "resume",
        ],
    ),
    ("settings", &["config"]),
    (
        "pipeline",
        &["night", "pipeline", "export", "report", "status", "error"],
    ),
];

/// The modules that are nothing but re-exports at an old path while other branches merge
/// (lib.rs); they import from anywhere and nothing in `src/` may import through them.
const SHIMS: &[&str] = &["gpu", "convert", "stations"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, ms)| ms.contains(&module))
}

fn src_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            src_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a file of `src/` belongs to (None: lib.rs and main.rs, the root).
fn module_of(path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src_dir()).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    if rel.components().count() == 1 {
        let stem = first.trim_end_matches(".rs").to_string();
        (stem != "lib" && stem != "main").then_some(stem)
    } else {
        Some(first)
    }
}

/// The text with comments and the contents of string and char literals blanked (newlines
/// kept, so line numbers hold).
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&b, i) {
            // Raw string r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            out.push_str("\"\"");
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                if b[j] == '\n' {
                    out.push('\n');
                }
                j += 1;
            }
            i = j;
        } else if c == '"' {
            out.push_str("\"\"");
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                if b.get(i) == Some(&'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' && is_char_literal(&b, i) {
            // 'x', '\n', '\'', '{' (a lifetime 'a has no closing quote).
            let mut j = i + 1;
            if b[j] == '\\' {
                j += 1;
            }
            j += 1;
            while j < b.len() && b[j] != '\'' {
                j += 1;
            }
            out.push_str("' '");
            i = j + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

fn is_char_literal(b: &[char], i: usize) -> bool {
    matches!(
        (b.get(i + 1), b.get(i + 2)),
        (Some('\\'), _) | (Some(_), Some('\''))
    )
}

/// The top-level modules named by `crate::` paths in `code` (grouped `crate::{a, b::c}`
/// included), with the line of each.
fn crate_imports(code: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(k) = rest.find("crate::") {
            let before = rest[..k].chars().last();
            rest = &rest[k + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // e.g. `$crate::` or `other_crate::`
            }
            if let Some(group) = rest.strip_prefix('{') {
                // The first segment of each item in the group (nested braces skipped).
                let mut depth = 0;
                let mut item_start = true;
                let mut ident = String::new();
                for ch in group.chars() {
                    match ch {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            if item_start && !ident.is_empty() {
                                out.push((std::mem::take(&mut ident), n + 1));
                            }
                            ident.clear();
                            item_start = true;
                        }
                        c if item_start && (c.is_alphanumeric() || c == '_') => ident.push(c),
                        _ => {
                            if item_start && !ident.is_empty() {
                                out.push((std::mem::take(&mut ident), n + 1));
                                item_start = false;
                            }
                        }
                    }
                }
                if !ident.is_empty() {
                    out.push((ident, n + 1));
                }
            } else {
                let ident: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !ident.is_empty() {
                    out.push((ident, n + 1));
                }
            }
        }
    }
    out
}

/// Items of the crate root that are not modules (`crate::VERSION`, `crate::Error`).
const ROOT_ITEMS: &[&str] = &["VERSION", "Error"];

/// Every import edge between top-level modules: (from, to) -> first place seen.
fn edges() -> BTreeMap<(String, String), String> {
    let mut files = Vec::new();
    src_files(&src_dir(), &mut files);
    files.sort();
    let mut edges = BTreeMap::new();
    for f in &files {
        let Some(from) = module_of(f) else { continue };
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        for (to, line) in crate_imports(&code) {
            if to == from || ROOT_ITEMS.contains(&to.as_str()) {
                continue;
            }
            let at = format!(
                "{}:{line}",
                f.strip_prefix(src_dir().parent().unwrap())
                    .unwrap()
                    .display()
            );
            edges.entry((from.clone(), to)).or_insert(at);
        }
    }
    edges
}

/// Imports from a layer above that the code still has, (from, to, what removes it): the
/// list may only shrink (issue 17).
const KNOWN_UPWARD: &[(&str, &str, &str)] = &[];

/// Compares what the scan found with a list of known exceptions: any finding not listed
/// fails, and so does a listed exception no longer found (its line is to be deleted).
fn ratchet(found: &[String], known: &[String], what: &str) {
    let new: Vec<&String> = found.iter().filter(|f| !known.contains(f)).collect();
    let gone: Vec<&String> = known.iter().filter(|k| !found.contains(k)).collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "{what}:\nnew (fix them):\n  {}\nlisted but gone (delete them from the list):\n  {}",
        new.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        gone.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

#[test]
fn modules_import_only_from_their_layer_or_below() {
    let mut problems = Vec::new();
    let mut upward = Vec::new();
    for ((from, to), at) in edges() {
        if SHIMS.contains(&from.as_str()) {
            continue;
        }
        if SHIMS.contains(&to.as_str()) {
            problems.push(format!(
                "{at}: {from} imports through the old path crate::{to}"
            ));
            continue;
        }
        match (layer_of(&from), layer_of(&to)) {
            (Some(a), Some(b)) if b > a => {
                eprintln!(
                    "{at}: {from} ({}) imports {to} from a layer above ({})",
                    LAYERS[a].0, LAYERS[b].0
                );
                upward.push(format!("{from} -> {to}"));
            }
            (None, _) => problems.push(format!("{at}: module {from} has no layer")),
            (_, None) => problems.push(format!("{at}: module {to} has no layer")),
            _ => {}
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    let known: Vec<String> = KNOWN_UPWARD
        .iter()
        .map(|(a, b, _)| format!("{a} -> {b}"))
        .collect();
    ratchet(
        &upward,
        &known,
        "imports from a layer above (first places on stderr)",
    );
}

/// Groups of top-level modules that import each other in a circle (strongly connected
/// components of the import graph), each sorted, with what removes them: the list may only
/// shrink (issue 17).
const KNOWN_CYCLES: &[(&[&str], &str)] = &[];

#[test]
fn top_level_modules_form_no_import_cycle() {
    let edges = edges();
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        if !SHIMS.contains(&from.as_str()) {
            graph.entry(from).or_default().insert(to);
            graph.entry(to).or_default();
        }
    }
    // Strongly connected components: the modules each module reaches, intersected with
    // those that reach it (the graph has a few dozen nodes).
    let reach = |start: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start.to_string()];
        while let Some(m) = todo.pop() {
            for &n in graph.get(m.as_str()).into_iter().flatten() {
                if seen.insert(n.to_string()) {
                    todo.push(n.to_string());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&str, BTreeSet<String>> = graph.keys().map(|&m| (m, reach(m))).collect();
    let mut found = BTreeSet::new();
    for &m in graph.keys() {
        if !reaches[m].contains(m) {
            continue;
        }
        let scc: Vec<&str> = graph
            .keys()
            .copied()
            .filter(|&n| reaches[m].contains(n) && reaches[n].contains(m))
            .collect();
        found.insert(scc.join(", "));
    }
    for c in &found {
        let ms: Vec<&str> = c.split(", ").collect();
        for ((a, b), at) in &edges {
            if ms.contains(&a.as_str()) && ms.contains(&b.as_str()) {
                eprintln!("cycle [{c}]: {a} -> {b} at {at}");
            }
        }
    }
    let found: Vec<String> = found.into_iter().collect();
    let known: Vec<String> = KNOWN_CYCLES.iter().map(|(c, _)| c.join(", ")).collect();
    ratchet(&found, &known, "import cycles (their edges on stderr)");
}

/// (file, first line, length) of every fn body in `code`, by brace counting from the
/// line with `fn name(` to the brace that closes the body.
fn functions(code: &str) -> Vec<(usize, usize, String)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let Some(k) = t.find("fn ") else { continue };
        let head = &t[..k];
        let is_fn = head.split_whitespace().all(|w| {
            [
                "pub",
                "pub(crate)",
                "pub(super)",
                "const",
                "unsafe",
                "async",
                "extern",
            ]
            .contains(&w)
                || w.starts_with("pub(")
                || w.starts_with('"')
        });
        if !is_fn {
            continue;
        }
        let name: String = t[k + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue;
        }
        // Find the body's opening brace (a `;` first: a declaration without a body).
        let mut depth = 0i64;
        let mut opened = false;
        let mut end = None;
        'scan: for (j, l2) in lines.iter().enumerate().skip(i) {
            for ch in l2.chars() {
                match ch {
                    ';' if !opened && depth == 0 => break 'scan,
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => {
                        depth -= 1;
                        if opened && depth == 0 {
                            end = Some(j);
                            break 'scan;
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(e) = end {
            out.push((i + 1, e - i + 1, name));
        }
    }
    out
}

/// Files over 800 lines and functions over 150 that the code still has ("path" or
/// "path: fn name"): the list may only shrink (issue 17).
const KNOWN_OVERSIZE: &[&str] = &[];

#[test]
fn no_file_over_800_lines_and_no_function_over_150() {
    let mut files = Vec::new();
    src_files(&src_dir(), &mut files);
    files.sort();
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let rel = f
            .strip_prefix(src_dir().parent().unwrap())
            .unwrap()
            .display()
            .to_string();
        let n = text.lines().count();
        if n > 800 {
            eprintln!("{rel}: {n} lines (limit 800)");
            found.push(rel.clone());
        }
        for (line, len, name) in functions(&code_only(&text)) {
            if len > 150 {
                eprintln!("{rel}:{line}: fn {name} is {len} lines (limit 150)");
                found.push(format!("{rel}: fn {name}"));
            }
        }
    }
    let known: Vec<String> = KNOWN_OVERSIZE.iter().map(|s| s.to_string()).collect();
    ratchet(
        &found,
        &known,
        "files over 800 lines, functions over 150 (sizes on stderr)",
    );
}

#[test]
fn the_scanner_sees_grouped_imports_and_skips_comments_and_strings() {
    let code = code_only(
        "use crate::{a::X, b, c::{d, e}};\n// crate::f\nlet s = \"crate::g\";\nfn h() { crate::i::j() }\n",
    );
    let got: Vec<String> = crate_imports(&code).into_iter().map(|x| x.0).collect();
    assert_eq!(got, ["a", "b", "c", "i"]);
    let f = functions(&code_only(
        "fn a() {\n  if x { y }\n}\nfn b();\npub fn c() { }\n",
    ));
    assert_eq!(f, vec![(1, 3, "a".to_string()), (5, 1, "c".to_string())]);
}
