//! One TCP session per worker: accept, authenticate (handshake), then serve leases, read
//! permits and results until the job ends or the worker is lost.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use shepseg_tiling::SegmentedTile;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::leases::{Event, Lease, Shared};
use crate::error::RemoteError;
use crate::protocol::{
    decode, random_bytes, read_frame, write_msg, CoordMsg, Role, WorkerMsg, MAX_HANDSHAKE_FRAME,
    PROTOCOL_VERSION,
};

/// Accepts connections and gives each its own task.
pub(super) async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let mut next_id = 0u64;
    loop {
        let Ok((socket, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        next_id += 1;
        let shared = Arc::clone(&shared);
        tokio::spawn(connection(socket, peer, next_id, shared));
    }
}

/// One connection, from handshake to end.
async fn connection(socket: TcpStream, peer: SocketAddr, id: u64, shared: Arc<Shared>) {
    let _ = socket.set_nodelay(true);
    let (mut reader, mut writer) = socket.into_split();
    let name = match tokio::time::timeout(
        Duration::from_secs(10),
        handshake(&mut reader, &mut writer, &shared),
    )
    .await
    {
        Ok(Ok(name)) => format!("{name} ({peer})"),
        Ok(Err(e)) => {
            let _ = shared.events.send(Event::Refused(format!(
                "refused connection from {peer}: {e}"
            )));
            return;
        }
        Err(_) => {
            let _ = shared.events.send(Event::Refused(format!(
                "refused connection from {peer}: no handshake within 10 s"
            )));
            return;
        }
    };
    let _ = shared.events.send(Event::Joined(name.clone()));
    shared.connections.fetch_add(1, Ordering::SeqCst);

    // Frames are read by their own task, so a worker that dies while waiting for work or a
    // permit is noticed.
    let (ftx, mut frx) = tokio::sync::mpsc::channel::<Result<WorkerMsg, RemoteError>>(4);
    let max_frame = shared.max_frame;
    let counted = Arc::clone(&shared);
    let read_task = tokio::spawn(async move {
        loop {
            let msg = match recv_frame(&mut reader, max_frame, &counted).await {
                Ok(p) => decode::<WorkerMsg>(&p),
                Err(e) => Err(e),
            };
            let end = msg.is_err();
            if ftx.send(msg).await.is_err() || end {
                return;
            }
        }
    });

    let mut permit: Option<OwnedSemaphorePermit> = None;
    let outcome = serve(id, &shared, &mut writer, &mut frx, &mut permit).await;
    read_task.abort();
    drop(permit);
    // Whatever happened, this connection's leases go back in the queue.
    let held: Vec<usize> = {
        let st = shared.lock();
        st.leases
            .iter()
            .filter(|(_, &c)| c == id)
            .map(|(&t, _)| t)
            .collect()
    };
    match outcome {
        Ok(Ended::Done) => {}
        Ok(Ended::Left) => {
            let mut st = shared.lock();
            for &t in &held {
                shared.hand_back(&mut st, t);
            }
            drop(st);
            let tile = held.first().copied();
            let _ = shared.events.send(Event::Left { name, tile });
        }
        Err(reason) => {
            let mut st = shared.lock();
            for t in held {
                shared.fail_attempt(&mut st, t, format!("worker {name} lost: {reason}"));
            }
            drop(st);
            let _ = shared.events.send(Event::Lost { name, reason });
        }
    }
    shared.connections.fetch_sub(1, Ordering::SeqCst);
}

/// Authenticates a worker; returns its name.
async fn handshake(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    shared: &Shared,
) -> Result<String, RemoteError> {
    let hello = decode::<WorkerMsg>(&recv_frame(reader, MAX_HANDSHAKE_FRAME, shared).await?)?;
    let WorkerMsg::Hello { version, name } = hello else {
        return Err(RemoteError::Protocol("expected hello".into()));
    };
    if version != PROTOCOL_VERSION {
        let reason =
            format!("protocol version {version}, this coordinator speaks {PROTOCOL_VERSION}");
        let _ = send(
            writer,
            &CoordMsg::Refused {
                reason: reason.clone(),
            },
            shared,
        )
        .await;
        return Err(RemoteError::Protocol(reason));
    }
    let nonce_c = random_bytes()?;
    send(writer, &CoordMsg::Challenge { nonce: nonce_c }, shared).await?;
    let proof = decode::<WorkerMsg>(&recv_frame(reader, MAX_HANDSHAKE_FRAME, shared).await?)?;
    let WorkerMsg::Proof {
        mac,
        nonce: nonce_w,
    } = proof
    else {
        return Err(RemoteError::Protocol("expected proof".into()));
    };
    if !shared.secret.verify(Role::Worker, &nonce_c, &nonce_w, &mac) {
        let _ = send(
            writer,
            &CoordMsg::Refused {
                reason: "authentication failed".into(),
            },
            shared,
        )
        .await;
        return Err(RemoteError::Secret(format!(
            "worker {name:?} failed authentication"
        )));
    }
    send(
        writer,
        &CoordMsg::Welcome {
            mac: shared.secret.mac(Role::Coordinator, &nonce_c, &nonce_w),
            job: Box::new(shared.job.clone()),
            heartbeat_ms: shared.heartbeat.as_millis() as u64,
            max_frame: shared.max_frame as u64,
        },
        shared,
    )
    .await?;
    Ok(name.chars().take(100).collect())
}

/// How a worker's session ended well.
enum Ended {
    /// Told there is no more work.
    Done,
    /// Left on a signal: its leases go back to the queue, no attempt counted.
    Left,
}

/// Serves an authenticated worker until it is told there is no more work or leaves; `Err`
/// with a reason when it was lost or misbehaved.
async fn serve(
    id: u64,
    shared: &Shared,
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    frames: &mut tokio::sync::mpsc::Receiver<Result<WorkerMsg, RemoteError>>,
    permit: &mut Option<OwnedSemaphorePermit>,
) -> Result<Ended, String> {
    let hb = shared.heartbeat;
    let owns = |tile: u32| shared.lock().leases.get(&(tile as usize)) == Some(&id);
    loop {
        match next_msg(frames, hb).await? {
            WorkerMsg::Heartbeat => {}
            WorkerMsg::Leaving { .. } => return Ok(Ended::Left),
            WorkerMsg::Ready => loop {
                let notified = shared.work.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                match shared.try_lease(id) {
                    Lease::Tile(i) => {
                        let window = shared.tiles[i].window.into();
                        let map = shared
                            .maps
                            .as_ref()
                            .and_then(|m| m.get(i))
                            .map(|m| (m.len() as u32, shepseg_tiling::packed::pack_labels(m)));
                        send_msg(
                            writer,
                            CoordMsg::Lease {
                                tile: i as u32,
                                window,
                                map,
                            },
                            shared,
                        )
                        .await?;
                        break;
                    }
                    Lease::Over => {
                        let _ = send_msg(writer, CoordMsg::NoMoreTiles, shared).await;
                        return Ok(Ended::Done);
                    }
                    Lease::Wait => {}
                }
                tokio::select! {
                    _ = &mut notified => {}
                    m = next_msg(frames, hb) => match m? {
                        WorkerMsg::Heartbeat => {}
                        WorkerMsg::Leaving { .. } => return Ok(Ended::Left),
                        other => return Err(format!("unexpected {} while waiting", kind(&other))),
                    },
                }
            },
            WorkerMsg::ReadRequest { tile } => {
                if !owns(tile) {
                    return Err(format!("read request for tile {tile} it does not hold"));
                }
                let p = loop {
                    tokio::select! {
                        p = Arc::clone(&shared.reads).acquire_owned() => {
                            break p.map_err(|e| e.to_string())?;
                        }
                        m = next_msg(frames, hb) => match m? {
                            WorkerMsg::Heartbeat => {}
                            WorkerMsg::Leaving { .. } => return Ok(Ended::Left),
                            other => return Err(format!("unexpected {} while waiting to read", kind(&other))),
                        },
                    }
                };
                *permit = Some(p);
                send_msg(writer, CoordMsg::ReadGranted { tile }, shared).await?;
            }
            WorkerMsg::ReadDone { .. } => {
                *permit = None;
            }
            WorkerMsg::TileDone(result) => {
                *permit = None;
                if !owns(result.tile) {
                    return Err(format!("result for tile {} it does not hold", result.tile));
                }
                let index = result.tile as usize;
                let tile = shared.tiles[index];
                if (result.rows as usize, result.cols as usize)
                    != (tile.window.ysize, tile.window.xsize)
                {
                    return Err(format!(
                        "tile {index} came back {}x{}, expected {}x{}",
                        result.cols, result.rows, tile.window.xsize, tile.window.ysize
                    ));
                }
                // A mosaic's workers keep their tiles' pixels: only the table comes.
                let (segimg, result) =
                    if shared.job.mosaic.is_some() || shared.job.sample_skip.is_some() {
                        if !result.lz4.is_empty() {
                            return Err(format!("tile {index} came with pixels it should keep"));
                        }
                        (ndarray::Array2::zeros((0, 0)), result)
                    } else {
                        tokio::task::spawn_blocking(move || {
                            result.unpack_image().map(|img| (img, result))
                        })
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?
                    };
                let done = SegmentedTile {
                    tile,
                    segimg,
                    part: result.part,
                    sample: result.sample,
                    max_spectral_diff: result.max_spectral_diff,
                    read_time: Duration::from_micros(result.read_us),
                    segment_time: Duration::from_micros(result.segment_us),
                };
                shared.lock().leases.remove(&index);
                let _ = shared.events.send(Event::Tile(index, Box::new(done)));
            }
            WorkerMsg::TileFailed { tile, error } => {
                *permit = None;
                if !owns(tile) {
                    return Err(format!("failure for tile {tile} it does not hold"));
                }
                let mut st = shared.lock();
                shared.fail_attempt(&mut st, tile as usize, error);
            }
            other @ (WorkerMsg::Hello { .. } | WorkerMsg::Proof { .. }) => {
                return Err(format!("unexpected {} after the handshake", kind(&other)))
            }
        }
    }
}

/// The next message from a worker, or why there is none.
async fn next_msg(
    frames: &mut tokio::sync::mpsc::Receiver<Result<WorkerMsg, RemoteError>>,
    hb: Duration,
) -> Result<WorkerMsg, String> {
    match tokio::time::timeout(hb, frames.recv()).await {
        Err(_) => Err(format!("no heartbeat for {} s", hb.as_secs_f64())),
        Ok(None) => Err("disconnected".to_string()),
        Ok(Some(Err(e))) => Err(e.to_string()),
        Ok(Some(Ok(m))) => Ok(m),
    }
}

/// Sends a message to a worker.
async fn send_msg(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    msg: CoordMsg,
    shared: &Shared,
) -> Result<(), String> {
    send(writer, &msg, shared).await.map_err(|e| e.to_string())
}

/// [`write_msg`], counting the bytes sent.
async fn send(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    msg: &CoordMsg,
    shared: &Shared,
) -> Result<(), RemoteError> {
    let sent = write_msg(writer, msg).await?;
    shared.bytes_out.fetch_add(sent as u64, Ordering::Relaxed);
    Ok(())
}

/// Reads one frame's payload (at most `max` bytes), counting the bytes received.
async fn recv_frame(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    max: usize,
    shared: &Shared,
) -> Result<Vec<u8>, RemoteError> {
    let payload = read_frame(reader, max).await?;
    shared
        .bytes_in
        .fetch_add(4 + payload.len() as u64, Ordering::Relaxed);
    Ok(payload)
}

/// A message's name, for errors.
fn kind(m: &WorkerMsg) -> &'static str {
    match m {
        WorkerMsg::Hello { .. } => "hello",
        WorkerMsg::Proof { .. } => "proof",
        WorkerMsg::Ready => "ready",
        WorkerMsg::ReadRequest { .. } => "read request",
        WorkerMsg::ReadDone { .. } => "read done",
        WorkerMsg::TileDone(_) => "tile result",
        WorkerMsg::TileFailed { .. } => "tile failure",
        WorkerMsg::Heartbeat => "heartbeat",
        WorkerMsg::Leaving { .. } => "leaving",
    }
}
