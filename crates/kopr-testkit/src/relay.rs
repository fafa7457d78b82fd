//! A plain-TCP relay on loopback that keeps a copy of every byte sent through it towards the
//! server: tests read the requests as the server got them (behind [`crate::s3::TlsProxy`],
//! after TLS came off).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// Starts a relay to `upstream` (a port on 127.0.0.1); returns its port and the record of
/// every byte sent up it, in arrival order.
pub fn recording_relay(upstream: u16) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for mut down in listener.incoming().flatten() {
            let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (Ok(mut down_w), Ok(mut up_r)) = (down.try_clone(), up.try_clone()) else {
                continue;
            };
            let record = record.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n @ 1..) = down.read(&mut buf) {
                    record.lock().unwrap().extend_from_slice(&buf[..n]);
                    if up.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = up.shutdown(Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut up_r, &mut down_w);
                let _ = down_w.shutdown(Shutdown::Both);
            });
        }
    });
    (port, seen)
}
