//! `switchyard-proxy check -f FILE...`: what serving these manifests would report, per object.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::compile::{CompileOptions, compile};
use crate::manifests;
use crate::model::{ObjectKey, Problem, Severity};
use crate::sources::files::read_files;

pub fn run(options: &CompileOptions, paths: &[PathBuf]) -> ExitCode {
    let (files, read_errors) = read_files(paths);
    let parsed = manifests::parse(&files);
    let (table, problems) = compile(&parsed.snapshot, options);
    let report = render(
        &read_errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        &parsed
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        &problems,
        table.served_ingresses,
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(report.text.as_bytes());
    if report.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

pub struct Report {
    pub text: String,
    pub failed: bool,
}

/// Unreadable files and malformed documents first, then the problems grouped by object.
pub fn render(
    read_errors: &[String],
    document_errors: &[String],
    problems: &[Problem],
    served: usize,
) -> Report {
    let mut text = String::new();
    for err in read_errors {
        text.push_str(&format!("error: {err}\n"));
    }
    for err in document_errors {
        text.push_str(&format!("error: {err}\n"));
    }
    let mut by_object: BTreeMap<(&str, &ObjectKey), Vec<&Problem>> = BTreeMap::new();
    for p in problems {
        by_object.entry((p.kind, &p.object)).or_default().push(p);
    }
    for ((kind, object), list) in &by_object {
        text.push_str(&format!("{kind} {object}\n"));
        for p in list {
            text.push_str(&format!("  {} {}: {}\n", p.severity, p.reason, p.message));
        }
    }
    let count = |s| problems.iter().filter(|p| p.severity == s).count();
    let errors = count(Severity::Error) + read_errors.len() + document_errors.len();
    text.push_str(&format!(
        "{served} Ingress(es) served, {errors} error(s), {} warning(s)\n",
        count(Severity::Warning)
    ));
    Report {
        text,
        failed: errors > 0,
    }
}
