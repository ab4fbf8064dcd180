//! Framing: how a message travels. A frame is a 4-byte big-endian payload length, then the
//! payload, one message encoded with postcard. A reader refuses a length over its limit before
//! allocating anything.
//!
//! The framing is written once, for async streams (the coordinator); the worker's blocking
//! socket goes through the same code, seen as an async stream whose every operation completes
//! at once ([`read_frame_blocking`], [`write_msg_blocking`]).

use std::future::Future;
use std::io::{Read, Write};
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::error::RemoteError;

/// Encodes a message as one frame (length prefix included).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, RemoteError> {
    let mut out = postcard::to_extend(msg, vec![0u8; 4])
        .map_err(|e| RemoteError::Protocol(format!("cannot encode: {e}")))?;
    let len = u32::try_from(out.len() - 4)
        .map_err(|_| RemoteError::Protocol("message over 4 GiB".into()))?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// Decodes one frame's payload.
pub fn decode<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, RemoteError> {
    postcard::from_bytes(payload).map_err(|e| RemoteError::Protocol(format!("bad message: {e}")))
}

/// Checks a length prefix against the limit.
pub fn frame_len(prefix: [u8; 4], max: usize) -> Result<usize, RemoteError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max {
        return Err(RemoteError::Protocol(format!(
            "frame of {len} bytes exceeds the limit of {max}"
        )));
    }
    Ok(len)
}

/// Reads one frame's payload, of at most `max` bytes.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Vec<u8>, RemoteError> {
    let mut prefix = [0u8; 4];
    r.read_exact(&mut prefix).await?;
    let len = frame_len(prefix, max)?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Writes one message and flushes; returns the bytes written (the frame, prefix included).
pub async fn write_msg<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    msg: &T,
) -> Result<usize, RemoteError> {
    let frame = encode(msg)?;
    w.write_all(&frame).await?;
    w.flush().await?;
    Ok(frame.len())
}

/// [`read_frame`] from a blocking stream.
pub fn read_frame_blocking(r: &mut impl Read, max: usize) -> Result<Vec<u8>, RemoteError> {
    complete(read_frame(&mut Blocking(r), max))
}

/// [`write_msg`] to a blocking stream.
pub fn write_msg_blocking<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), RemoteError> {
    complete(write_msg(&mut Blocking(w), msg)).map(|_| ())
}

/// A blocking stream seen as an async one: every operation blocks, then completes.
struct Blocking<S>(S);

/// Retries an operation interrupted by a signal, as `std::io::Read::read_exact` does.
fn retrying<T>(mut op: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    loop {
        match op() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

impl<S: Read + Unpin> AsyncRead for Blocking<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let read = retrying(|| self.0.read(buf.initialize_unfilled()));
        Poll::Ready(read.map(|n| buf.advance(n)))
    }
}

impl<S: Write + Unpin> AsyncWrite for Blocking<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(retrying(|| self.0.write(data)))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(retrying(|| self.0.flush()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Runs a future over [`Blocking`] streams, which never waits, to its end in one poll.
fn complete<T>(f: impl Future<Output = Result<T, RemoteError>>) -> Result<T, RemoteError> {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => r,
        Poll::Pending => Err(RemoteError::Protocol(
            "a blocking stream reported that it would wait".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{WorkerMsg, PROTOCOL_VERSION};

    #[test]
    fn messages_round_trip() {
        let msg = WorkerMsg::Hello {
            version: PROTOCOL_VERSION,
            name: "w".into(),
        };
        let frame = encode(&msg).unwrap();
        let payload = read_frame_blocking(&mut &frame[..], 1024).unwrap();
        assert_eq!(decode::<WorkerMsg>(&payload).unwrap(), msg);
        let mut written = Vec::new();
        write_msg_blocking(&mut written, &msg).unwrap();
        assert_eq!(written, frame);
    }

    /// A blocking stream that hands out one byte a read (as a slow socket may), interrupted
    /// by a signal every other time: the frame still arrives whole.
    #[test]
    fn frames_arrive_whole_through_short_and_interrupted_reads() {
        struct Trickle<'a>(&'a [u8], bool);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.1 = !self.1;
                if self.1 {
                    return Err(std::io::ErrorKind::Interrupted.into());
                }
                let n = self.0.len().min(buf.len()).min(1);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let msg = WorkerMsg::TileFailed {
            tile: 7,
            error: "x".repeat(300),
        };
        let frame = encode(&msg).unwrap();
        let payload = read_frame_blocking(&mut Trickle(&frame, false), 1024).unwrap();
        assert_eq!(decode::<WorkerMsg>(&payload).unwrap(), msg);
        // A stream that ends mid-frame is an error, not a short message.
        let err = read_frame_blocking(&mut &frame[..frame.len() - 1], 1024).unwrap_err();
        assert!(matches!(err, RemoteError::Io(_)), "{err}");
    }

    #[test]
    fn oversized_frames_are_refused_before_reading() {
        let frame = [0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let err = read_frame_blocking(&mut &frame[..], 1024).unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
    }
}
