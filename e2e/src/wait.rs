//! Polling until something holds.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::E2eError;

/// Polls `f` every 200 ms until it returns `Ok`, or fails after `limit`
/// naming `what` and the last value seen. Returns the value and how long
/// it took.
pub async fn eventually<T, F, Fut>(
    what: &str,
    limit: Duration,
    mut f: F,
) -> Result<(T, Duration), E2eError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match f().await {
            Ok(v) => return Ok((v, start.elapsed())),
            Err(last) if start.elapsed() >= limit => {
                return Err(E2eError::Timeout {
                    what: what.to_string(),
                    limit,
                    last,
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
