//! The examples in docs/rollouts.md are true: every RolloutRoute on the page reads into the
//! type and passes validation, and the `kubectl switchyard render` output shown is exactly what
//! the command prints for the page's first route.

use switchyard_operator::render::{Position, parse_backend, render, routes};

/// The fenced blocks of the page: (language, text).
fn blocks() -> Vec<(String, String)> {
    let page = std::fs::read_to_string(switchyard_tests::repo_root().join("docs/rollouts.md"))
        .expect("read docs/rollouts.md");
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in page.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => open = Some((lang.trim().to_owned(), String::new())),
            (Some(_), Some("")) => blocks.extend(open.take()),
            (Some((_, text)), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

fn route_blocks() -> Vec<String> {
    blocks()
        .into_iter()
        .filter(|(lang, text)| lang == "yaml" && text.contains("kind: RolloutRoute"))
        .map(|(_, text)| text)
        .collect()
}

#[test]
fn every_route_on_the_page_is_valid() {
    let blocks = route_blocks();
    assert_eq!(blocks.len(), 4, "the field reference and three recipes");
    for text in blocks {
        for route in routes(&text).unwrap_or_else(|e| panic!("{e}:\n{text}")) {
            route
                .spec
                .validate()
                .unwrap_or_else(|e| panic!("{e}:\n{text}"));
            // Every route renders, as the operator would expand it.
            render(&text, &Position::default()).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        }
    }
}

#[test]
fn the_render_output_shown_is_what_render_prints() {
    let shop = route_blocks()
        .into_iter()
        .next()
        .expect("the field reference");
    let shown = blocks()
        .into_iter()
        .find(|(lang, text)| lang == "yaml" && text.starts_with("# RolloutRoute shop, step 2"))
        .map(|(_, text)| text)
        .expect("the render output on the page");
    let position = Position {
        step: Some(2),
        from: Some(parse_backend("shop-v1:80").expect("backend")),
    };
    assert_eq!(render(&shop, &position).expect("render"), shown);
}
