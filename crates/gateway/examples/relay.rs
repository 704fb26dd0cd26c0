//! The least a proxy on this machine can add: a relay that copies bytes between each caller's
//! connection and a connection of its own to the upstream, with two blocking threads per pair
//! and no parsing at all. It cannot route, authenticate or log; it measures the loopback hop
//! (two more TCP transits and two more wake-ups per call) that every proxy pays, so that
//! `bench/load.py --reference-relay` can say how much of a gateway's added latency is the hop
//! and how much is the gateway's own work. Only the standard library.
//!
//!     cargo build --release -p switchyard-gateway --example relay
//!     relay UPSTREAM_HOST:PORT LISTEN_ADDR

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;

/// Copies `from` to `to` until `from` ends, then ends `to`'s writing side.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// One caller: a connection of its own to the upstream, and a thread per direction.
fn relay(caller: TcpStream, upstream: &str) -> io::Result<()> {
    let up = TcpStream::connect(upstream)?;
    caller.set_nodelay(true)?;
    up.set_nodelay(true)?;
    let (caller_back, up_back) = (caller.try_clone()?, up.try_clone()?);
    thread::spawn(move || pipe(caller, up));
    thread::spawn(move || pipe(up_back, caller_back));
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(upstream), Some(listen)) = (args.next(), args.next()) else {
        return Err("usage: relay UPSTREAM_HOST:PORT LISTEN_ADDR".into());
    };
    let listener = TcpListener::bind(&listen)?;
    for caller in listener.incoming() {
        if let Err(e) = caller.and_then(|c| relay(c, &upstream)) {
            eprintln!("relay: a connection failed: {e}");
        }
    }
    Ok(())
}
