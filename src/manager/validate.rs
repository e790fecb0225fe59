//! Checks of the values clients send, each naming the field and what to fix.

use std::collections::BTreeMap;

use super::ManagerError;

pub const MAX_NAME_LEN: usize = 128;
pub const MAX_DESCRIPTION_LEN: usize = 4096;
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL_KEY_LEN: usize = 63;
pub const MAX_LABEL_VALUE_LEN: usize = 256;
pub const MAX_REQUEST_ID_LEN: usize = 128;
pub const MAX_REASON_LEN: usize = 1024;

/// Workflow names: 1 to 128 of letters, digits, '.', '_' and '-', starting with a letter or digit.
pub fn name(field: &str, value: &str) -> Result<(), ManagerError> {
    if value.is_empty() {
        return Err(ManagerError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_NAME_LEN {
        return Err(ManagerError::invalid(
            field,
            format!(
                "is {} characters; the maximum is {MAX_NAME_LEN}",
                value.chars().count()
            ),
        ));
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) || !value.chars().all(ok_char) {
        return Err(ManagerError::invalid(
            field,
            format!(
                "'{}' is not a valid name: use letters, digits, '.', '_' and '-', starting with a letter or digit",
                crate::quote::shown(value)
            ),
        ));
    }
    Ok(())
}

pub fn description(value: &str) -> Result<(), ManagerError> {
    if value.len() > MAX_DESCRIPTION_LEN {
        return Err(ManagerError::invalid(
            "description",
            format!(
                "is {} bytes; the maximum is {MAX_DESCRIPTION_LEN}",
                value.len()
            ),
        ));
    }
    Ok(())
}

pub fn labels(field: &str, labels: &BTreeMap<String, String>) -> Result<(), ManagerError> {
    if labels.len() > MAX_LABELS {
        return Err(ManagerError::invalid(
            field,
            format!("has {} labels; the maximum is {MAX_LABELS}", labels.len()),
        ));
    }
    for (k, v) in labels {
        let ok_key = !k.is_empty()
            && k.len() <= MAX_LABEL_KEY_LEN
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        if !ok_key {
            return Err(ManagerError::invalid(
                field,
                format!(
                    "label key '{}' must be 1 to {MAX_LABEL_KEY_LEN} of letters, digits, '.', '_', '-', '/'",
                    crate::quote::shown(k)
                ),
            ));
        }
        if v.len() > MAX_LABEL_VALUE_LEN {
            return Err(ManagerError::invalid(
                field,
                format!(
                    "label '{k}' value is {} bytes; the maximum is {MAX_LABEL_VALUE_LEN}",
                    v.len()
                ),
            ));
        }
    }
    Ok(())
}

pub fn request_id(value: &str) -> Result<(), ManagerError> {
    if value.len() > MAX_REQUEST_ID_LEN || value.chars().any(char::is_control) {
        return Err(ManagerError::invalid(
            "request_id",
            format!("must be at most {MAX_REQUEST_ID_LEN} bytes without control characters"),
        ));
    }
    Ok(())
}

/// A cancellation reason: it is recorded in the execution's events.
pub fn reason(value: &str) -> Result<(), ManagerError> {
    if value.len() > MAX_REASON_LEN {
        return Err(ManagerError::invalid(
            "reason",
            format!("is {} bytes; the maximum is {MAX_REASON_LEN}", value.len()),
        ));
    }
    Ok(())
}

/// Execution ids are UUIDs.
pub fn execution_id(value: &str) -> Result<(), ManagerError> {
    if value.is_empty() {
        return Err(ManagerError::invalid("execution_id", "must not be empty"));
    }
    uuid::Uuid::parse_str(value).map(|_| ()).map_err(|_| {
        ManagerError::invalid(
            "execution_id",
            format!(
                "'{}' is not an execution id (a UUID)",
                crate::quote::shown(value)
            ),
        )
    })
}

/// A page size: 0 means `default`; negative is refused; above `max` is `max` (AIP-158: a
/// caller asking for more than a server gives gets full pages and a token, so a client
/// written for one server's limit works against another's).
pub fn page_size(value: i32, default: usize, max: usize) -> Result<usize, ManagerError> {
    match value {
        0 => Ok(default.min(max)),
        v if v < 0 => Err(ManagerError::invalid(
            "page_size",
            format!("{v} is negative; use 0 for the default or 1 to {max}"),
        )),
        v => Ok((v as usize).min(max)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(name("name", "data-analysis.v2_x").is_ok());
        for bad in ["", "-x", "a b", "ü", &"x".repeat(129)] {
            assert!(name("name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(0, 50, 1000).unwrap(), 50);
        assert!(page_size(-1, 50, 1000).is_err());
        assert_eq!(page_size(1001, 50, 1000).unwrap(), 1000);
        assert_eq!(page_size(0, 50, 5).unwrap(), 5);
    }
}
