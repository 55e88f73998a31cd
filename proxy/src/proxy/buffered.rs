//! A request body read whole before the upstream is asked (`proxy-request-buffering: on`),
//! never more than `proxy-body-size`.

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;

pub enum ReadError {
    /// Longer than the limit: 413.
    TooLarge,
    /// The client went away or sent garbage.
    Failed,
}

/// `limit` 0 is unlimited.
pub async fn read_whole(body: Incoming, limit: u64) -> Result<Bytes, ReadError> {
    let limit = if limit == 0 {
        usize::MAX
    } else {
        usize::try_from(limit).unwrap_or(usize::MAX)
    };
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => Err(ReadError::TooLarge),
        Err(_) => Err(ReadError::Failed),
    }
}
