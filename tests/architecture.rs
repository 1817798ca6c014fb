//! The layering docs/architecture.md describes, checked on the source itself: no two files refer to each
//! other, no file holds more than 800 lines of non-test code, the TUI builds no run itself, no source or
//! export module reaches up into a front end, and nothing points at files outside the repository.
//!
//! A file "refers to" another when it names an item defined there: in a `use` (trees expanded), or in a path
//! written in code (`crate::a::b::Item`, `super::x::Y`, or `m::Y` after `use …::m`). Re-exports are followed
//! to the file that defines the item; `mod x;` declarations are not references; `#[cfg(test)]` code is left
//! out, and so are files that are only test modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest non-test part of a source file, in lines.
const MAX_LINES: usize = 800;

/// One source file: its module path (`["pipeline", "engine"]`), its code with comments, strings and test
/// items removed, and whether it is a test-only file.
struct SourceFile {
    path: PathBuf,
    module: Vec<String>,
    code: String,
    /// Child modules declared in it (`mod x;`), test ones excluded.
    children: BTreeSet<String>,
    /// Child modules declared `#[cfg(test)] mod x;`.
    test_children: BTreeSet<String>,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src readable") {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are module `a::b`; `src/lib.rs` and `src/main.rs` are the roots.
fn module_of(path: &Path) -> Vec<String> {
    let rel = path.strip_prefix(src_dir()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

/// The code with comments and the insides of string and char literals blanked out (newlines kept, so line
/// counts stay right).
fn strip_comments_and_strings(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let keep_newline = |ch: char, out: &mut String| out.push(if ch == '\n' { '\n' } else { ' ' });
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    keep_newline(c[i], &mut out);
                    i += 1;
                }
            }
        } else if c[i] == 'r'
            && (c.get(i + 1) == Some(&'"') || c.get(i + 1) == Some(&'#'))
            && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_'))
        {
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            j += 1;
            out.push_str("\"\"");
            loop {
                if j >= c.len() {
                    break;
                }
                if c[j] == '"' && (1..=hashes).all(|h| c.get(j + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                keep_newline(c[j], &mut out);
                j += 1;
            }
            i = j;
        } else if c[i] == '"' {
            out.push_str("\"\"");
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                if let Some(&ch) = c.get(i) {
                    keep_newline(ch, &mut out);
                }
                i += 1;
            }
            i += 1;
        } else if c[i] == '\'' {
            // A char literal ('x', '\n', '\u{1F}'), else a lifetime or label.
            if c.get(i + 1) == Some(&'\\') {
                let mut j = i + 2;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                out.push_str("' '");
                i = j + 1;
            } else if c.get(i + 2) == Some(&'\'') {
                out.push_str("' '");
                i += 3;
            } else {
                out.push('\'');
                i += 1;
            }
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Remove every `#[cfg(test)]` item (a braced block, or a `mod x;` line), returning the code left and the
/// test modules declared by name.
fn strip_test_items(code: &str) -> (String, BTreeSet<String>) {
    let mut out = String::with_capacity(code.len());
    let mut test_children = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        // The item runs to its first `;` if that comes before any `{`, else to the `}` closing its first `{`.
        let semi = after.find(';');
        let brace = after.find('{');
        let end = match (semi, brace) {
            (Some(s), Some(b)) if s < b => s + 1,
            (Some(s), None) => s + 1,
            (_, Some(b)) => {
                let mut depth = 0;
                let mut end = after.len();
                for (i, ch) in after[b..].char_indices() {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, None) => after.len(),
        };
        let item = &after[..end];
        if let Some(name) = item
            .trim()
            .strip_prefix("mod ")
            .or_else(|| item.trim().strip_prefix("pub mod "))
            .and_then(|r| r.strip_suffix(';'))
        {
            test_children.insert(name.trim().to_string());
        }
        // Keep the line count: the removed item's newlines stay.
        out.extend(item.chars().filter(|&c| c == '\n'));
        rest = &after[end..];
    }
    out.push_str(rest);
    (out, test_children)
}

fn declared_children(code: &str) -> BTreeSet<String> {
    let mut children = BTreeSet::new();
    for line in code.lines() {
        let l = line.trim();
        let l = l
            .strip_prefix("pub(crate) ")
            .or_else(|| l.strip_prefix("pub "))
            .unwrap_or(l);
        if let Some(name) = l.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            children.insert(name.trim().to_string());
        }
    }
    children
}

fn load() -> Vec<SourceFile> {
    let mut paths = Vec::new();
    rust_files(&src_dir(), &mut paths);
    paths.sort();
    let mut files: Vec<SourceFile> = paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let clean = strip_comments_and_strings(&text);
            let (code, test_children) = strip_test_items(&clean);
            SourceFile {
                module: module_of(&path),
                children: declared_children(&code),
                code,
                test_children,
                path,
            }
        })
        .collect();
    // Files that are test modules of their parent (`#[cfg(test)] mod tests;`), and anything below them.
    let test_modules: BTreeSet<Vec<String>> = files
        .iter()
        .flat_map(|f| {
            f.test_children.iter().map(|c| {
                let mut m = f.module.clone();
                m.push(c.clone());
                m
            })
        })
        .collect();
    files.retain(|f| !test_modules.iter().any(|t| f.module.starts_with(t)));
    files
}

/// A `use` tree (`a::{b, c::{self, D}}`) flattened into paths.
fn expand_use(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    // Split the top level at commas outside braces.
    let mut depth = 0;
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, ch) in tree.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&tree[start..]);
    if parts.len() > 1 {
        for p in parts {
            expand_use(p, prefix, out);
        }
        return;
    }
    let tree = parts[0].trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let inner = tree[open + 1..tree.rfind('}').unwrap()].trim();
        let mut p = prefix.to_vec();
        p.extend(head.split("::").filter(|s| !s.is_empty()).map(String::from));
        expand_use(inner, &p, out);
    } else {
        let path = tree.split(" as ").next().unwrap().trim();
        let mut p = prefix.to_vec();
        for seg in path.split("::").map(str::trim).filter(|s| !s.is_empty()) {
            if seg != "self" {
                p.push(seg.to_string());
            }
        }
        out.push(p);
    }
}

/// Every `use` in the code: (is it `pub`, its expanded paths).
fn use_statements(code: &str) -> Vec<(bool, Vec<Vec<String>>)> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while let Some(at) = code[i..].find("use ") {
        let at = i + at;
        i = at + 4;
        let boundary = at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        if !boundary {
            continue;
        }
        let before = code[..at].trim_end();
        let public = before.ends_with("pub") || before.ends_with("pub(crate)");
        let Some(end) = code[at..].find(';') else {
            break;
        };
        let mut paths = Vec::new();
        expand_use(&code[at + 4..at + end], &[], &mut paths);
        found.push((public, paths));
        i = at + end;
    }
    found
}

/// Paths written in code starting with `start::` (`crate`, `super`, `pktpath` or an imported module name).
fn written_paths(code: &str, start: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let needle = format!("{start}::");
    let bytes = code.as_bytes();
    let mut i = 0;
    while let Some(at) = code[i..].find(&needle) {
        let at = i + at;
        i = at + needle.len();
        let boundary = at == 0
            || !(bytes[at - 1].is_ascii_alphanumeric()
                || bytes[at - 1] == b'_'
                || bytes[at - 1] == b':');
        if !boundary {
            continue;
        }
        let mut path = vec![start.to_string()];
        let mut j = at + needle.len();
        loop {
            let seg: String = code[j..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if seg.is_empty() {
                break;
            }
            j += seg.len();
            path.push(seg);
            if code[j..].starts_with("::") {
                j += 2;
            } else {
                break;
            }
        }
        found.push(path);
    }
    found
}

struct Crate {
    files: Vec<SourceFile>,
    by_module: BTreeMap<Vec<String>, usize>,
}

impl Crate {
    fn new() -> Crate {
        let files = load();
        let by_module = files
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.path.ends_with("main.rs"))
            .map(|(i, f)| (f.module.clone(), i))
            .collect();
        Crate { files, by_module }
    }

    /// A path as written in file `from` made absolute (module segments from the crate root), or `None` for
    /// paths into other crates.
    fn absolute(&self, from: usize, path: &[String]) -> Option<Vec<String>> {
        let here = &self.files[from].module;
        let first = path.first()?.as_str();
        match first {
            "crate" | "pktpath" => Some(path[1..].to_vec()),
            "super" | "self" => {
                let mut base = here.clone();
                let mut rest = path;
                while let Some(s) = rest.first() {
                    match s.as_str() {
                        "super" => {
                            base.pop();
                        }
                        "self" => {}
                        _ => break,
                    }
                    rest = &rest[1..];
                }
                base.extend(rest.iter().cloned());
                Some(base)
            }
            // `use child::Item` names a child module of this file's module.
            name if self.files[from].children.contains(name) => {
                let mut base = here.clone();
                base.extend(path.iter().cloned());
                Some(base)
            }
            _ => None,
        }
    }

    /// The file defining what an absolute path names, following re-exports (bounded, for safety).
    fn defining_file(&self, path: &[String], depth: usize) -> Option<usize> {
        // The longest prefix that is a module with a file.
        let (file, rest) = (0..=path.len())
            .rev()
            .find_map(|n| self.by_module.get(&path[..n]).map(|&f| (f, &path[n..])))?;
        let item = rest.first()?;
        if depth > 8 {
            return Some(file);
        }
        // A `pub use` in that file naming this item sends it on.
        for (public, paths) in use_statements(&self.files[file].code) {
            if !public {
                continue;
            }
            for p in paths {
                if p.last() == Some(item)
                    && let Some(abs) = self.absolute(file, &p)
                {
                    let mut target = abs;
                    target.extend(rest[1..].iter().cloned());
                    if let Some(f) = self.defining_file(&target, depth + 1) {
                        return Some(f);
                    }
                }
            }
        }
        Some(file)
    }

    /// Every file that file `from` refers to (itself excluded).
    fn references(&self, from: usize) -> BTreeSet<usize> {
        let code = &self.files[from].code;
        let mut paths: Vec<Vec<String>> = Vec::new();
        let mut module_aliases: BTreeSet<String> = BTreeSet::new();
        for (_, used) in use_statements(code) {
            for p in used {
                if let Some(abs) = self.absolute(from, &p) {
                    // A module imported by name: its later `name::Item` paths are references too.
                    if self.by_module.contains_key(&abs)
                        && let Some(last) = p.last()
                    {
                        module_aliases.insert(last.clone());
                    }
                    paths.push(abs);
                }
            }
        }
        let mut starts: Vec<String> = ["crate", "super", "pktpath"].map(String::from).to_vec();
        starts.extend(module_aliases.iter().cloned());
        starts.extend(self.files[from].children.iter().cloned());
        for start in &starts {
            for p in written_paths(code, start) {
                let abs = match start.as_str() {
                    "crate" | "super" | "pktpath" => self.absolute(from, &p),
                    _ => self.alias_target(from, start).map(|mut m| {
                        m.extend(p[1..].iter().cloned());
                        m
                    }),
                };
                if let Some(abs) = abs {
                    paths.push(abs);
                }
            }
        }
        paths
            .iter()
            .filter_map(|p| self.defining_file(p, 0))
            .filter(|&f| f != from)
            .collect()
    }

    /// The absolute module an imported module name (or a child module) stands for in file `from`.
    fn alias_target(&self, from: usize, name: &str) -> Option<Vec<String>> {
        if self.files[from].children.contains(name) {
            let mut m = self.files[from].module.clone();
            m.push(name.to_string());
            return Some(m);
        }
        for (_, used) in use_statements(&self.files[from].code) {
            for p in used {
                if p.last().map(String::as_str) == Some(name)
                    && let Some(abs) = self.absolute(from, &p)
                    && self.by_module.contains_key(&abs)
                {
                    return Some(abs);
                }
            }
        }
        None
    }

    fn name(&self, f: usize) -> String {
        self.files[f]
            .path
            .strip_prefix(src_dir().parent().unwrap())
            .unwrap()
            .display()
            .to_string()
    }
}

#[test]
fn no_two_files_refer_to_each_other() {
    let krate = Crate::new();
    let refs: Vec<BTreeSet<usize>> = (0..krate.files.len())
        .map(|f| krate.references(f))
        .collect();
    let mut cycles = Vec::new();
    for (a, to) in refs.iter().enumerate() {
        for &b in to {
            if a < b && refs[b].contains(&a) {
                cycles.push(format!("{} ↔ {}", krate.name(a), krate.name(b)));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_references_through_uses_paths_and_re_exports() {
    let krate = Crate::new();
    let file = |name: &str| {
        (0..krate.files.len())
            .find(|&f| krate.name(f) == name)
            .unwrap_or_else(|| panic!("{name} exists"))
    };
    // A `use` of a re-exported item lands on the file defining it, not on the module that re-exports it.
    let tui_app = krate.references(file("src/tui/app.rs"));
    assert!(tui_app.contains(&file("src/debug/driver.rs")));
    // An inline path (`crate::pipeline::…` inside code) counts.
    let main = krate.references(file("src/main.rs"));
    assert!(main.contains(&file("src/cli.rs")), "{main:?}");
}

#[test]
fn no_file_holds_more_than_800_lines_of_non_test_code() {
    let krate = Crate::new();
    let long: Vec<String> = (0..krate.files.len())
        .filter_map(|f| {
            let lines = krate.files[f].code.trim_end().lines().count();
            (lines > MAX_LINES).then(|| format!("{}: {lines} lines", krate.name(f)))
        })
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}

/// The files of `dir` (under src/) whose code refers to a module of `forbidden`.
fn files_referring(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let krate = Crate::new();
    let mut bad = Vec::new();
    for f in 0..krate.files.len() {
        if !krate.name(f).starts_with(&format!("src/{dir}")) {
            continue;
        }
        for r in krate.references(f) {
            let module = &krate.files[r].module;
            if module
                .first()
                .is_some_and(|m| forbidden.contains(&m.as_str()))
            {
                bad.push(format!("{} → {}", krate.name(f), krate.name(r)));
            }
        }
    }
    bad
}

#[test]
fn the_tui_builds_no_run_itself() {
    let bad = files_referring("tui", &["replay", "live", "sim", "session"]);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    let bad = files_referring("debug", &["replay", "sim", "session", "tui"]);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn sources_and_exports_do_not_reach_up_into_a_front_end_or_the_session() {
    for dir in ["pipeline", "export", "replay", "live", "sim"] {
        let bad = files_referring(dir, &["session", "tui", "debug", "cli", "report"]);
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
}

#[test]
fn nothing_points_at_files_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    rust_files(&src_dir(), &mut paths);
    paths.push(root.join("README.md"));
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            for outside in ["DESIGN.md", "library-facts", "../shared"] {
                assert!(
                    !line.contains(outside),
                    "{}:{}: points at {outside}, which is not in this repository: {line}",
                    path.display(),
                    n + 1
                );
            }
        }
    }
}

/// The layers of docs/architecture.md, bottom up: each top-level module and the ones it may use.
const LAYERS: [(&str, &[&str]); 9] = [
    ("pipeline", &[]),
    ("export", &["pipeline"]),
    ("sim", &["pipeline", "export"]),
    ("replay", &["pipeline", "export"]),
    ("live", &["pipeline", "export"]),
    ("debug", &["pipeline", "export", "live"]),
    (
        "session",
        &["pipeline", "export", "sim", "replay", "live", "debug"],
    ),
    ("tui", &["pipeline", "export", "debug"]),
    ("cli", &["pipeline", "export", "sim", "replay", "live"]),
];

#[test]
fn each_layer_uses_only_the_layers_below_it() {
    let krate = Crate::new();
    let mut bad = Vec::new();
    for f in 0..krate.files.len() {
        if krate.name(f) == "src/main.rs" || krate.name(f) == "src/lib.rs" {
            continue;
        }
        let from = &krate.files[f].module[0];
        let Some((_, allowed)) = LAYERS.iter().find(|(m, _)| m == from) else {
            bad.push(format!(
                "{}: module {from} is not in the layer list",
                krate.name(f)
            ));
            continue;
        };
        for r in krate.references(f) {
            let to = &krate.files[r].module[0];
            if to != from && !allowed.contains(&to.as_str()) {
                bad.push(format!("{} → {}", krate.name(f), krate.name(r)));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
