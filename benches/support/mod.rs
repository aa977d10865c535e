//! Shared by the benches.

use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls a future that never waits (sync hooks, sync handlers), once, with
/// no runtime in the way.
pub(crate) fn poll_ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a benchmarked call waited"),
    }
}
