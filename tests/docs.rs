//! The manual holds together: every relative link in the README, ARCHITECTURE.md, the book (`docs/src/`) and the
//! scenario READMEs leads to a file of the repository (and to a heading of it, where it names one), and every
//! chapter of the book is in its table of contents.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pulldown_cmark::{Event, Parser, Tag, TagEnd};

/// The repository's root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown files the manual is made of.
fn pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> =
        ["README.md", "ARCHITECTURE.md", "scenarios/README.md", "scenarios/layouts/README.md"]
            .iter()
            .map(|p| root().join(p))
            .collect();
    let mut book: Vec<PathBuf> = std::fs::read_dir(root().join("docs/src"))
        .expect("docs/src")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    book.sort();
    pages.extend(book);
    pages
}

/// Every link target in `text` (code spans and blocks are not read as links).
fn links(text: &str) -> Vec<String> {
    Parser::new(text)
        .filter_map(|event| match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => Some(dest_url.to_string()),
            _ => None,
        })
        .collect()
}

/// The anchors of `text`'s headings, as GitHub and mdBook make them (lower case, spaces to `-`, punctuation
/// other than `-` and `_` dropped).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut heading: Option<String> = None;
    for event in Parser::new(text) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let h = heading.take().unwrap_or_default();
                let slug: String = h
                    .to_lowercase()
                    .chars()
                    .filter_map(|c| match c {
                        ' ' => Some('-'),
                        c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                        _ => None,
                    })
                    .collect();
                anchors.insert(slug);
            }
            _ => {}
        }
    }
    anchors
}

/// What is wrong with a link from `page` to `target`, if anything.
fn broken(page: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (file, anchor) = target.split_once('#').map_or((target, None), |(f, a)| (f, Some(a)));
    let path = if file.is_empty() { page.to_path_buf() } else { page.parent().expect("a folder").join(file) };
    if !path.exists() {
        return Some(format!("{target}: no such file ({})", path.display()));
    }
    let anchor = anchor.filter(|a| !a.is_empty())?;
    if path.extension().is_some_and(|e| e == "md") {
        let text = std::fs::read_to_string(&path).expect("a readable page");
        if !anchors(&text).contains(anchor) {
            return Some(format!("{target}: no heading #{anchor} in {}", path.display()));
        }
    }
    None
}

#[test]
fn every_link_of_the_manual_leads_somewhere() {
    let mut wrong = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("a readable page");
        for target in links(&text) {
            if let Some(why) = broken(&page, &target) {
                wrong.push(format!("{}: {why}", page.strip_prefix(root()).unwrap_or(&page).display()));
            }
        }
    }
    assert!(wrong.is_empty(), "broken links:\n{}", wrong.join("\n"));
}

#[test]
fn every_chapter_is_in_the_table_of_contents() {
    let summary = std::fs::read_to_string(root().join("docs/src/SUMMARY.md")).expect("docs/src/SUMMARY.md");
    let listed: BTreeSet<String> = links(&summary).into_iter().collect();
    let missing: Vec<String> = pages()
        .iter()
        .filter(|p| p.starts_with(root().join("docs/src")))
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .filter(|name| name != "SUMMARY.md" && !listed.contains(name))
        .collect();
    assert!(missing.is_empty(), "chapters not in docs/src/SUMMARY.md: {missing:?}");
}

#[test]
fn a_broken_link_and_a_missing_heading_are_found() {
    let page = root().join("README.md");
    assert!(broken(&page, "docs/src/no-such-chapter.md").is_some());
    assert!(broken(&page, "docs/src/performance.md#no-such-heading").is_some());
    assert_eq!(broken(&page, "docs/src/performance.md#build-time"), None);
    assert_eq!(broken(&page, "https://example.org/anything"), None);
}

#[test]
fn the_readme_is_read_in_five_minutes() {
    let lines = std::fs::read_to_string(root().join("README.md")).expect("README.md").lines().count();
    assert!(lines <= 200, "README.md has {lines} lines; the rest belongs in the book (docs/src/)");
}
