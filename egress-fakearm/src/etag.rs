//! `If-Match` / `If-None-Match` preconditions on writes.

use crate::arm_error::ArmError;
use crate::exchange::Req;

/// Checks a write's preconditions against the stored `ETag` (`None` when the resource does not
/// exist): `If-Match` must name the current `ETag` (or be `*` on an existing resource);
/// `If-None-Match: *` refuses an existing resource, and `If-None-Match: <etag>` refuses that
/// `ETag`. Both answer 412 `PreconditionFailed`.
pub fn check(req: &Req, current: Option<&str>, id: &str) -> Result<(), ArmError> {
    if let Some(want) = req.header("if-match") {
        let ok = match current {
            None => false,
            Some(cur) => tags(want).any(|t| t == "*" || t == cur),
        };
        if !ok {
            let found = current.map_or_else(
                || "the resource does not exist".to_owned(),
                |c| format!("its ETag is {c}"),
            );
            return Err(ArmError::new(
                412,
                "PreconditionFailed",
                format!("The condition If-Match: {want} on resource {id} was not met: {found}."),
            ));
        }
    }
    if let (Some(none), Some(cur)) = (req.header("if-none-match"), current)
        && tags(none).any(|t| t == "*" || t == cur)
    {
        return Err(ArmError::new(
            412,
            "PreconditionFailed",
            format!(
                "The condition If-None-Match: {none} on resource {id} was not met: it exists with ETag {cur}."
            ),
        ));
    }
    Ok(())
}

fn tags(header: &str) -> impl Iterator<Item = &str> {
    header.split(',').map(str::trim).filter(|t| !t.is_empty())
}
