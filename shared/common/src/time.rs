//! Timestamps between chrono and protobuf.

use chrono::{DateTime, Utc};
use pai_proto::Timestamp;

/// A time as a protobuf field (always set).
pub fn to_proto(t: DateTime<Utc>) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or_default(),
    })
}

/// A protobuf time field, `None` when unset or out of range.
pub fn from_proto(t: Option<Timestamp>) -> Option<DateTime<Utc>> {
    let t = t?;
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_survives_the_round_trip() {
        let now = Utc::now();
        assert_eq!(from_proto(to_proto(now)), Some(now));
        assert_eq!(from_proto(None), None);
    }
}
