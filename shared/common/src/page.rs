//! Keyset pagination of newest-first lists: the cursor names the last row
//! a page returned by its creation time and id, `{micros}_{uuid}`.

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

/// A cursor that no list of pai's wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cursor: not a cursor of this list")]
pub struct InvalidCursor;

/// The cursor after the row created at `created_at` with `id`.
pub fn cursor(created_at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}_{id}", created_at.timestamp_micros())
}

/// Reads a cursor; `None` for the empty one (the first page).
pub fn parse_cursor(cursor: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, InvalidCursor> {
    if cursor.is_empty() {
        return Ok(None);
    }
    let (micros, id) = cursor.split_once('_').ok_or(InvalidCursor)?;
    let time = micros
        .parse()
        .ok()
        .and_then(|m| Utc.timestamp_micros(m).single())
        .ok_or(InvalidCursor)?;
    Ok(Some((
        time,
        Uuid::parse_str(id).map_err(|_| InvalidCursor)?,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_garbage_is_refused() {
        let time = Utc
            .timestamp_micros(1_765_000_000_123_456)
            .single()
            .expect("time");
        let id = Uuid::from_u128(42);
        assert_eq!(parse_cursor(&cursor(time, id)), Ok(Some((time, id))));
        assert_eq!(parse_cursor(""), Ok(None));
        for bad in [
            "x",
            "1_notauuid",
            "abc_00000000-0000-0000-0000-00000000002a",
        ] {
            assert_eq!(parse_cursor(bad), Err(InvalidCursor), "{bad}");
        }
    }
}
