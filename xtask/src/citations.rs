//! The source cites the protocol notes by section (`docs/protocol.md §4.2`): every citation must
//! name that file by its path and a section the file has, so that a reader can follow it.

use std::path::{Path, PathBuf};

use crate::Result;
use crate::process::root;

/// The section numbers of a Markdown file's `##`/`###` headings (`## 4. …` → `4`,
/// `### 4.2 …` → `4.2`).
fn sections(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix("### ").or_else(|| l.strip_prefix("## ")))
        .filter_map(|title| {
            let number: String = title
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let number = number.trim_end_matches('.');
            (!number.is_empty()).then(|| number.to_owned())
        })
        .collect()
}

/// The `§N` and `§N.M` numbers in `text`.
fn cited_sections(text: &str) -> Vec<String> {
    text.split('§')
        .skip(1)
        .map(|rest| {
            let n: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            n.trim_end_matches('.').to_owned()
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// Whether a citation's text goes on on the next line: it ends in the middle of a list of
/// sections (`§2,`, `§2 and`, a bare `§`) or right after the file's name.
fn continues(segment: &str) -> bool {
    let end = segment.trim_end();
    !end.contains(')')
        && (end.ends_with(',')
            || end.ends_with('§')
            || end.ends_with(" and")
            || end.ends_with("protocol.md"))
}

/// A source line without its leading comment markers (`//!`, `///`, `//`, `*`).
fn strip_comment(line: &str) -> &str {
    let line = line.trim_start();
    let line = line
        .strip_prefix("//!")
        .or_else(|| line.strip_prefix("///"))
        .or_else(|| line.strip_prefix("//"))
        .or_else(|| line.strip_prefix('*'))
        .unwrap_or(line);
    line.trim_start()
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != "corpus" && name != "artifacts" {
                rust_files(&path, into);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// Every problem with the citations under `root`: a citation without the `docs/` path, a
/// section the notes do not have, a reference to reference material that is not in the
/// repository.
fn problems(root: &Path) -> Vec<String> {
    let notes = std::fs::read_to_string(root.join("docs/protocol.md")).unwrap_or_default();
    let known = sections(&notes);
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "fuzz", "benches"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut found = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let shown = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .display()
            .to_string();
        // This checker quotes citations in its own tests.
        if shown == "xtask/src/citations.rs" {
            continue;
        }
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().copied().enumerate() {
            let at = format!("{shown}:{}", n + 1);
            for outside in ["captures/README.md", "behaviour.md"] {
                if line.contains(outside) {
                    found.push(format!(
                        "{at} cites {outside}, which is not in the repository"
                    ));
                }
            }
            let Some(i) = line.find("protocol.md") else {
                continue;
            };
            if !line[..i].ends_with("docs/") {
                found.push(format!(
                    "{at} cites protocol.md without its path docs/protocol.md"
                ));
            }
            let mut cited = cited_sections(&line[i..]);
            // A list of sections may wrap onto the next comment lines.
            let mut segment = &line[i..];
            let mut next = n + 1;
            while continues(segment) {
                let Some(following) = lines.get(next) else {
                    break;
                };
                let following = strip_comment(following);
                segment = following
                    .split_once(')')
                    .map_or(following, |(inside, _)| inside);
                cited.extend(cited_sections(segment));
                next += 1;
            }
            for section in cited {
                if !known.contains(&section) {
                    found.push(format!(
                        "{at} cites §{section}, which docs/protocol.md lacks"
                    ));
                }
            }
        }
    }
    found
}

/// `cargo xtask ci`'s check of the citations.
pub(crate) fn check() -> Result {
    let found = problems(&root());
    if found.is_empty() {
        eprintln!("\n==> citations of docs/protocol.md: all resolve");
        Ok(())
    } else {
        Err(format!("broken citations:\n  {}", found.join("\n  ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_citation_of_the_protocol_notes_names_docs_protocol_md_and_a_section_it_has() {
        let found = problems(&root());
        assert!(found.is_empty(), "{}", found.join("\n"));
    }

    #[test]
    fn sections_are_read_from_headings_and_citations() {
        let md = "# T\n## 1. Request\n### 1.2 Endpoint\n## 10. Differences\ntext §9\n";
        assert_eq!(sections(md), ["1", "1.2", "10"]);
        assert_eq!(
            cited_sections("(docs/protocol.md §2, §3.1, §4.2 step 3)."),
            ["2", "3.1", "4.2"]
        );
    }

    /// Citations are read one line at a time, from the line's first `protocol.md` on: a list of
    /// sections that wraps onto the next comment line (`response.rs` has one: "(docs/protocol.md
    /// §2,\n//! §3, §4)") is never checked, so a dangling section there passes.
    #[test]
    fn a_citation_continued_on_the_next_line_is_checked_too() {
        let dir = std::env::temp_dir().join(format!("xtask-citations-wrap-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("docs")).expect("docs");
        std::fs::create_dir_all(dir.join("crates/x")).expect("crate");
        std::fs::write(dir.join("docs/protocol.md"), "## 1. One\n## 2. Two\n").expect("md");
        std::fs::write(
            dir.join("crates/x/lib.rs"),
            "//! Response bytes to output (docs/protocol.md §1,\n//! §2, §9).\n",
        )
        .expect("rs");
        let found = problems(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            found.iter().any(|p| p.contains("§9")),
            "a cited §9 that docs/protocol.md lacks passed: {found:?}"
        );
    }

    #[test]
    fn a_bare_or_dangling_citation_is_reported() {
        let dir = std::env::temp_dir().join(format!("xtask-citations-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("docs")).expect("docs");
        std::fs::create_dir_all(dir.join("crates/x")).expect("crate");
        std::fs::write(dir.join("docs/protocol.md"), "## 1. One\n### 1.1 Sub\n").expect("md");
        std::fs::write(
            dir.join("crates/x/lib.rs"),
            "//! ok (docs/protocol.md §1.1)\n//! bare (protocol.md §1)\n//! gone (docs/protocol.md §7)\n",
        )
        .expect("rs");
        let found = problems(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("lib.rs:2") && found[0].contains("without its path"));
        assert!(found[1].contains("lib.rs:3") && found[1].contains("§7"));
    }
}
