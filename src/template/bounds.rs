//! Size bounds around the template engine. minijinja 3 charges fuel for instructions and
//! for the bytes and items it builds and walks, and refuses a repetition past 100,000,000
//! items; vendor/minijinja adds the walk `~` makes. But a sequence repeated lazily is free
//! to create, and converting a result to JSON happens outside the engine, without fuel:
//! the `template` fuzz target found `[s] * 2222…` aborting the process on a 10^17-byte
//! allocation. So every value that leaves the engine is measured before it is converted,
//! rendered text goes through a writer that stops at the limit, and every built-in filter
//! refuses an input beyond the limits before it iterates or allocates.

use std::io;

use minijinja::value::{Rest, Value, ValueKind, ValueOrKwargs};
use minijinja::{Environment, Error, ErrorKind, State};

/// Largest value (its JSON size, about) an expression may yield, and the most text a
/// template may render.
pub const TEMPLATE_MAX_VALUE_BYTES: usize = 8 * 1024 * 1024;

/// Most items a filter may take in (the same as minijinja's `range`).
pub const TEMPLATE_MAX_FILTER_ITEMS: usize = 100_000;

/// Largest count a filter may be given for padding or grouping (`indent`, `batch`,
/// `slice`, a `format` width or precision).
pub const TEMPLATE_MAX_FILTER_COUNT: usize = 10_000;

fn too_large(what: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidOperation, what.to_string())
}

/// Refuses a value larger than [`TEMPLATE_MAX_VALUE_BYTES`] (about its JSON size), before it
/// is converted or written: a lazily repeated sequence is refused by its length, before a
/// single item is made.
pub fn measure(value: &Value) -> Result<(), Error> {
    measure_walked(value).map(|_| ())
}

/// Like [`measure`], returning about how many bytes the walk covered.
fn measure_walked(value: &Value) -> Result<usize, Error> {
    let mut budget = TEMPLATE_MAX_VALUE_BYTES;
    charge(value, &mut budget)?;
    Ok(TEMPLATE_MAX_VALUE_BYTES - budget)
}

/// Walks `value` charging its size against `budget`, failing as soon as it is spent.
fn charge(value: &Value, budget: &mut usize) -> Result<(), Error> {
    let spend = |budget: &mut usize, n: usize| {
        *budget = budget.checked_sub(n).ok_or_else(|| {
            too_large(format!(
                "the value is larger than {TEMPLATE_MAX_VALUE_BYTES} bytes, the template limit"
            ))
        })?;
        Ok::<(), Error>(())
    };
    match value.kind() {
        ValueKind::String => spend(budget, value.as_str().map_or(0, str::len) + 2),
        ValueKind::Bytes => spend(budget, value.as_bytes().map_or(0, <[u8]>::len)),
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => {
            if let Some(len) = value.len() {
                spend(budget, len.saturating_mul(2))?;
            }
            let is_map = value.kind() == ValueKind::Map;
            for item in value.try_iter()? {
                spend(budget, 1)?;
                if is_map {
                    charge(&value.get_item(&item)?, budget)?;
                }
                charge(&item, budget)?;
            }
            Ok(())
        }
        _ => spend(budget, 8),
    }
}

/// An `io::Write` that takes at most [`TEMPLATE_MAX_VALUE_BYTES`] and then fails, so
/// rendering stops there instead of growing a string without bound.
#[derive(Default)]
pub struct BoundedText {
    pub text: Vec<u8>,
    pub overflowed: bool,
}

impl io::Write for BoundedText {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.text.len() + buf.len() > TEMPLATE_MAX_VALUE_BYTES {
            self.overflowed = true;
            return Err(io::Error::other("template output limit"));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The message for a render stopped by [`BoundedText`].
pub fn render_too_large() -> String {
    format!("the rendered text is larger than {TEMPLATE_MAX_VALUE_BYTES} bytes, the template limit")
}

/// Refuses a filter input with more than [`TEMPLATE_MAX_FILTER_ITEMS`] items or more than
/// [`TEMPLATE_MAX_VALUE_BYTES`] of text, or (for a filter that walks into the items) of
/// about its JSON size. An iterable of unknown length is counted, up to the limit and no
/// further.
fn check_input(state: &State, filter: &str, value: &Value) -> Result<(), Error> {
    let refuse = |what: String| too_large(format!("filter '{filter}': {what}"));
    match value.kind() {
        ValueKind::String | ValueKind::Bytes => {
            let bytes = value
                .as_str()
                .map(str::len)
                .or_else(|| value.as_bytes().map(<[u8]>::len))
                .unwrap_or(0);
            if bytes > TEMPLATE_MAX_VALUE_BYTES {
                return Err(refuse(format!(
                    "its input is longer than {TEMPLATE_MAX_VALUE_BYTES} bytes"
                )));
            }
        }
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => {
            let items = match value.len() {
                Some(len) => len,
                None => value
                    .try_iter()?
                    .take(TEMPLATE_MAX_FILTER_ITEMS + 1)
                    .count(),
            };
            if items > TEMPLATE_MAX_FILTER_ITEMS {
                return Err(refuse(format!(
                    "its input has more than {TEMPLATE_MAX_FILTER_ITEMS} items"
                )));
            }
            // A filter that formats, compares or copies items walks into each of them, and
            // minijinja charges fuel for that only once it is done: `[[1] * 9999] * 9999`
            // has 9,999 items but 10^8 inside them. The walk here stops at the limit, and
            // is paid for like bytes (64 per fuel), so a loop over a filter stays bounded.
            if !SHALLOW_FILTERS.contains(&filter) {
                let walked = measure_walked(value).map_err(|_| {
                    refuse(format!(
                        "its input is larger than {TEMPLATE_MAX_VALUE_BYTES} bytes"
                    ))
                })?;
                state.consume_fuel(walked as u64 / 64)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Filters that look at a container's items without walking into them.
const SHALLOW_FILTERS: &[&str] = &[
    "length", "count", "first", "last", "default", "d", "bool", "attr", "list", "reverse", "batch",
    "slice", "chain", "zip", "items",
];

/// A count argument (`indent` width, `batch`/`slice` size) at most
/// [`TEMPLATE_MAX_FILTER_COUNT`].
fn check_count(filter: &str, value: Option<&Value>) -> Result<(), Error> {
    let Some(n) = value.and_then(|v| i64::try_from(v.clone()).ok()) else {
        return Ok(());
    };
    if n.unsigned_abs() > TEMPLATE_MAX_FILTER_COUNT as u64 {
        return Err(too_large(format!(
            "filter '{filter}': {n} is more than {TEMPLATE_MAX_FILTER_COUNT}"
        )));
    }
    Ok(())
}

/// Widths and precisions of a printf-style `format` string, e.g. `%-20.3f`: each at most
/// [`TEMPLATE_MAX_FILTER_COUNT`], or `format` would pad to any size asked.
fn check_format(spec: &Value) -> Result<(), Error> {
    let Some(spec) = spec.as_str() else {
        return Ok(());
    };
    for part in spec.split('%').skip(1) {
        let part = part.trim_start_matches(['-', '+', ' ', '#', '0']);
        for number in part.splitn(2, '.').map(|s| {
            s.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        }) {
            if number.len() > 5 || number.parse::<usize>().unwrap_or(0) > TEMPLATE_MAX_FILTER_COUNT
            {
                return Err(too_large(format!(
                    "filter 'format': a width or precision of {number} is more than {TEMPLATE_MAX_FILTER_COUNT}"
                )));
            }
        }
    }
    Ok(())
}

/// Every built-in filter, by name.
#[rustfmt::skip]
const BUILTIN_FILTERS: &[&str] = &[
    "safe", "escape", "e", "lower", "upper", "title", "capitalize", "replace", "length",
    "count", "dictsort", "items", "reverse", "trim", "join", "split", "lines", "default", "d",
    "round", "abs", "int", "float", "attr", "first", "last", "min", "max", "sort", "list",
    "string", "bool", "batch", "slice", "sum", "indent", "select", "reject", "selectattr",
    "rejectattr", "map", "groupby", "unique", "chain", "zip", "pprint", "format", "tojson",
];

/// Replaces every built-in filter with one that checks its arguments against the limits
/// above and then calls the built-in (minijinja's own, fuel-charging implementation). `json`
/// is kept as another name for `tojson`.
pub fn bound_filters(env: &mut Environment<'static>) {
    let aliases = BUILTIN_FILTERS.iter().map(|name| (*name, *name));
    for (name, builtin) in aliases.chain([("json", "tojson")]) {
        let builtin = env
            .get_filter(builtin)
            .cloned()
            .unwrap_or_else(|| panic!("minijinja has no built-in filter '{builtin}'"));
        // `ValueOrKwargs`: keyword arguments (`map(attribute='a')`) pass through as they came.
        env.add_filter(name, move |state: &mut State, args: Rest<ValueOrKwargs>| {
            let args: Vec<Value> = args.0.into_iter().map(ValueOrKwargs::into_value).collect();
            for arg in args.iter() {
                check_input(state, name, arg)?;
            }
            match name {
                "indent" | "batch" | "slice" => check_count(name, args.get(1))?,
                "format" => check_format(&args[0])?,
                "replace" => check_replacement(&args)?,
                _ => {}
            }
            builtin.call(state, &args)
        });
    }
}

/// `text | replace(from, to)`: the result may be at most [`TEMPLATE_MAX_VALUE_BYTES`].
fn check_replacement(args: &[Value]) -> Result<(), Error> {
    let text = |i: usize| args.get(i).and_then(Value::as_str).unwrap_or("");
    let (value, from, to) = (text(0), text(1), text(2));
    let hits = if from.is_empty() {
        value.chars().count() + 1
    } else {
        value.matches(from).count()
    };
    let size = value.len().saturating_add(hits.saturating_mul(to.len()));
    if size > TEMPLATE_MAX_VALUE_BYTES {
        return Err(too_large(format!(
            "filter 'replace': the result would be larger than {TEMPLATE_MAX_VALUE_BYTES} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::template::{eval, eval_expression, has_text_around, render_string};

    /// Text around `{{ }}` renders as in a step's arguments; anything else evaluates as a
    /// condition would.
    fn refused(text: &str, says: &str) {
        let ctx = json!({"input": {"rows": [1, 2], "name": "x"}});
        let err = if has_text_around(text) {
            render_string(text, &ctx)
        } else {
            eval(text, &ctx)
        }
        .unwrap_err();
        assert!(err.reason.contains(says), "{text}: {}", err.reason);
    }

    #[test]
    fn a_huge_repetition_is_refused_wherever_it_goes() {
        // minijinja itself refuses a repetition past 100,000,000 items...
        refused(
            "input.rows * 1000000000000000",
            "repeated sequence is too large",
        );
        // ...and what it allows, repeated lazily, still meets the limits here.
        refused("input.rows * 10000000", "template limit");
        refused(
            "{{ input.rows * 10000000 }} as text",
            "larger than 8388608 bytes, the template limit",
        );
        refused(
            "{{ 'x' * 5000000 }}{{ 'y' * 5000000 }}",
            "rendered text is larger",
        );
        refused("(input.rows * 10000000) | join", "more than 100000 items");
        refused(
            "(input.rows * 10000000) | list | length",
            "more than 100000 items",
        );
        refused(
            "(input.rows * 10000000) | map('string') | list",
            "more than 100000 items",
        );
        refused("('x' * 10000000) | upper", "longer than");
    }

    #[test]
    fn counts_and_widths_that_would_pad_without_bound_are_refused() {
        refused("'a' | indent(1000000000000)", "more than 10000");
        refused("input.rows | batch(1000000000000)", "more than 10000");
        refused("input.rows | slice(1000000000000)", "more than 10000");
        refused("'%999999999999d' | format(1)", "width or precision");
        refused("'%-5.999999s' | format('a')", "width or precision");
        refused(
            "('a' * 1000000) | replace('a', 'aaaaaaaaaaaaaaaaaaaa')",
            "result would be larger",
        );
    }

    #[test]
    fn ordinary_filters_still_work() {
        let ctx = json!({"rows": [3, 1, 2], "name": "wfm", "objs": [{"a": 1}, {"a": 2}]});
        for (text, want) in [
            ("rows | sort | join(',')", json!("1,2,3")),
            ("rows | batch(2) | list", json!([[3, 1], [2]])),
            ("'%-5s|%.2f' | format(name, 1.5)", json!("wfm  |1.50")),
            ("name | replace('w', 'W') | upper", json!("WFM")),
            ("rows | map('string') | join", json!("312")),
            ("name | indent(2)", json!("wfm")),
            ("rows | tojson", json!("[3, 1, 2]")),
            ("objs | map(attribute='a') | list", json!([1, 2])),
            (
                "objs | sort(attribute='a', reverse=true) | first",
                json!({"a": 2}),
            ),
            ("(rows * 3) | length", json!(9)),
            ("rows | default([]) | first", json!(3)),
        ] {
            assert_eq!(eval_expression(text, &ctx).unwrap(), want, "{text}");
        }
        assert_eq!(
            render_string("{% for r in rows | sort %}{{ r }}{% endfor %}", &ctx).unwrap(),
            json!("123")
        );
    }
}
