//! Network writes must fail with `EPIPE`, never kill the process. The `kopr` binary restores
//! SIGPIPE's default action (so `kopr … | head` ends quietly, as Kopia does), and rustls
//! writes TLS records with `writev`, which — unlike Rust's `send` — raises SIGPIPE when the
//! server has closed the connection (a TLS alert to a plain-HTTP endpoint, a server killed in
//! the middle of an upload). [`NoSigpipe`] blocks SIGPIPE in the calling thread while storage
//! calls run (threads spawned meanwhile inherit the mask), then discards any SIGPIPE raised in
//! the meantime, so the write's `EPIPE` becomes a clear storage error.

/// While alive, SIGPIPE raised by this thread's writes is held and then discarded.
pub struct NoSigpipe {
    #[cfg(unix)]
    old: libc::sigset_t,
}

#[cfg(unix)]
fn sigpipe_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialize and fill the set they are given.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        set
    }
}

impl NoSigpipe {
    /// Blocks SIGPIPE in this thread.
    pub fn new() -> NoSigpipe {
        #[cfg(unix)]
        {
            let set = sigpipe_set();
            // SAFETY: pthread_sigmask with valid sets only changes this thread's mask.
            unsafe {
                let mut old: libc::sigset_t = std::mem::zeroed();
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
                NoSigpipe { old }
            }
        }
        #[cfg(not(unix))]
        NoSigpipe {}
    }
}

impl Default for NoSigpipe {
    fn default() -> Self {
        NoSigpipe::new()
    }
}

impl Drop for NoSigpipe {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            let set = sigpipe_set();
            // SAFETY: sigpending/sigtimedwait/pthread_sigmask on valid sets; sigtimedwait with a
            // zero timeout only takes a SIGPIPE already pending for this thread or the process.
            unsafe {
                let was_blocked = libc::sigismember(&self.old, libc::SIGPIPE) == 1;
                if !was_blocked {
                    let zero = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: 0,
                    };
                    loop {
                        let mut pending: libc::sigset_t = std::mem::zeroed();
                        libc::sigpending(&mut pending);
                        if libc::sigismember(&pending, libc::SIGPIPE) != 1 {
                            break;
                        }
                        if libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) != libc::SIGPIPE {
                            break;
                        }
                    }
                }
                libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut());
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Write;

    /// With SIGPIPE's default action, a `writev` to a closed socket inside the guard returns
    /// `EPIPE` instead of killing the process (run in a child process: the test would die).
    #[test]
    fn a_write_to_a_closed_socket_is_an_error_not_a_death() {
        if std::env::var_os("KOPR_SIGPIPE_CHILD").is_none() {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "sigpipe::tests::a_write_to_a_closed_socket_is_an_error_not_a_death",
                    "--exact",
                    "--nocapture",
                ])
                .env("KOPR_SIGPIPE_CHILD", "1")
                .output()
                .unwrap();
            let so = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{:?} {so}", out.status);
            assert!(so.contains("got EPIPE"), "{so}");
            return;
        }
        // SAFETY: as the kopr binary does at start.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        drop(l.accept().unwrap());
        drop(l);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let _g = NoSigpipe::new();
        let buf = [0u8; 1024];
        let mut err = None;
        for _ in 0..100 {
            if let Err(e) = c.write_vectored(&[std::io::IoSlice::new(&buf)]) {
                err = Some(e);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let e = err.expect("writes to a closed socket kept succeeding");
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        println!("got EPIPE");
    }
}
