//! The fuzz targets' inputs replayed as ordinary tests: every seed of the committed corpus
//! (fuzz/corpus/<target>/) and every input the fuzzer once crashed on (regressions below),
//! through the same entry points cargo-fuzz runs (`wfm::fuzzing`).

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("the committed corpus") {
        let path = entry.unwrap().path();
        run(&std::fs::read(&path).unwrap());
        n += 1;
    }
    n
}

#[test]
fn the_definition_corpus_runs_clean() {
    assert!(replay("definition", wfm::fuzzing::definition) >= 10);
}

#[test]
fn the_template_corpus_runs_clean() {
    assert!(replay("template", wfm::fuzzing::template) >= 10);
}

#[test]
fn a_runaway_template_ends() {
    let started = std::time::Instant::now();
    wfm::fuzzing::template(
        b"{% for a in range(99999) %}{% for b in range(99999) %}{{ a }}{% endfor %}{% endfor %}",
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// Found by the `definition` target: a `when` condition containing `}}` made minijinja's
/// expression lexer panic ("empty lexer stack") while the server validated the definition.
/// (The full input is also in the corpus, fuzz/corpus/definition/regression-lexer-stack.yaml.)
#[test]
fn a_condition_containing_closing_braces_is_refused_not_a_panic() {
    wfm::fuzzing::definition(
        b"steps:\n  - id: a\n    tool: {name: sleep, arguments: {duration_ms: 1}}\n    when: ig.status }}\"\n",
    );
    wfm::fuzzing::template(b"ig.status }}");
    let err = wfm::template::eval("ig.status }}", &serde_json::json!({})).unwrap_err();
    assert!(err.reason.contains("cannot contain '}}'"), "{}", err.reason);
}

/// Found by the `template` target: a sequence repeated by a huge count
/// (`[s222222 ]*2222…`) made the conversion of the result allocate ~10^17 bytes and the
/// process abort. minijinja (3.x) now refuses a repetition past 100,000,000 items, and a
/// template may yield at most `TEMPLATE_MAX_VALUE_BYTES`.
#[test]
fn a_sequence_repeated_a_huge_number_of_times_is_refused_not_an_abort() {
    let crash = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus/template/repeated-sequence-huge-count"),
    )
    .unwrap();
    wfm::fuzzing::template(&crash);
    let context = serde_json::json!({"s222222": 1});
    let err = wfm::template::eval("[s222222 ]*2222222222222222222", &context).unwrap_err();
    assert!(
        err.reason.contains("repeated sequence is too large"),
        "{}",
        err.reason
    );
}

/// Found by the `template` target (a timeout in CI): `{{ [i] * 100000000000000000~00 }}`.
/// minijinja 2 folded the constant expression while compiling: it repeated the list lazily
/// and then formatted every one of its 10^17 items for `~`. Every way of walking a large
/// repetition (`~`, `in`, `==`, a loop, a filter) now ends: on minijinja's repetition
/// limit, on fuel (which minijinja 3 charges per item walked and byte built), or on the
/// limits in `template::bounds` (a filter's input is measured, deeply, before it runs).
#[test]
fn walking_a_huge_repetition_ends_with_an_error() {
    let found = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/template/repetition-concatenated"),
    )
    .unwrap();
    wfm::fuzzing::template(&found);
    let context = serde_json::json!({"i": 1, "rows": [1, 2]});
    for (text, says) in [
        (
            "[i] * 100000000000000000 ~ 0",
            "repeated sequence is too large",
        ),
        ("([1] * 99999999) ~ 'x'", "out of fuel"),
        ("([[1] * 9999] * 9999) ~ 'x'", "out of fuel"),
        ("3 in rows * 49999999", "out of fuel"),
        ("(rows * 49999999) in 'text'", "out of fuel"),
        ("rows * 49999999 == rows * 49999999", "out of fuel"),
        ("('x' * 99999999) ~ ('x' * 99999999)", "out of fuel"),
        ("{% for r in rows * 49999999 %}{% endfor %}", "out of fuel"),
        ("(rows * 49999999) | string", "more than 100000 items"),
        ("([[1] * 9999] * 9999) | string", "input is larger than"),
        ("([[1] * 9999] * 9999) | join", "input is larger than"),
        ("([[1] * 9999] * 9999) | tojson", "input is larger than"),
        ("([[1] * 9999] * 9999) | pprint", "input is larger than"),
        (
            "([[1] * 9999] * 9999) | unique | list",
            "input is larger than",
        ),
        (
            "([[1] * 9999] * 9999) | sort | first",
            "input is larger than",
        ),
        ("'%s' | format([[1] * 9999] * 9999)", "input is larger than"),
    ] {
        // A `{% %}` template renders as in a step's arguments; a condition refuses it.
        let err = if wfm::template::has_text_around(text) {
            wfm::template::render_string(text, &context)
        } else {
            wfm::template::eval(text, &context)
        }
        .unwrap_err();
        assert!(err.reason.contains(says), "{text}: {}", err.reason);
    }
}
