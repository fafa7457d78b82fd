//! Puts, gets (whole and ranged), lists and deletes the same objects through kopr's S3 client
//! (blocking, `PARALLEL` threads) and through OpenDAL's S3 service (async, `PARALLEL` requests
//! at once) against s3s-fs on loopback, and prints MiB/s of each step, then the error message
//! each gives for a wrong secret key and for an endpoint nobody listens on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt, TryStreamExt};
use kopr_blob::s3::{S3Options, S3Storage};
use kopr_blob::{BlobStorage, PutOptions};
use kopr_testkit::s3::{S3Server, ACCESS_KEY, SECRET_KEY};

fn arg(i: usize, dflt: usize) -> usize {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(dflt)
}

fn kopr(endpoint: &str, bucket: &str, secret: &str) -> S3Storage {
    S3Storage::new(S3Options {
        bucket: bucket.into(),
        endpoint: endpoint.into(),
        do_not_use_tls: true,
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: secret.into(),
        ..Default::default()
    })
    .expect("kopr S3 client")
}

fn opendal(endpoint: &str, bucket: &str, secret: &str) -> opendal::Operator {
    let b = opendal::services::S3::default()
        .bucket(bucket)
        .endpoint(&format!("http://{endpoint}"))
        .region("us-east-1")
        .access_key_id(ACCESS_KEY)
        .secret_access_key(secret)
        .disable_config_load()
        .disable_ec2_metadata();
    opendal::Operator::new(b)
        .expect("OpenDAL S3")
        .layer(opendal::layers::RetryLayer::new().with_max_times(3))
        .layer(opendal::layers::TimeoutLayer::new().with_io_timeout(Duration::from_secs(60)))
}

/// Runs `f(i)` for every object on `par` threads.
fn threads(n: usize, par: usize, f: impl Fn(usize) + Sync) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..par {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= n {
                    return;
                }
                f(i);
            });
        }
    });
}

fn rate(bytes: usize, t: Duration) -> String {
    format!(
        "{:7.1} MiB/s ({:.2} s)",
        bytes as f64 / (1 << 20) as f64 / t.as_secs_f64(),
        t.as_secs_f64()
    )
}

fn main() {
    let (n, mib, par) = (arg(1, 64), arg(2, 4), arg(3, 8));
    opendal::install_default(); // OpenDAL's reqwest transport
    let Some(srv) = S3Server::start() else {
        eprintln!("s3s-fs not found: set KOPR_S3_SERVER or run .ci/run's install line");
        std::process::exit(2);
    };
    srv.create_bucket("kopr");
    srv.create_bucket("dal");
    let ep = srv.endpoint();
    let data: Arc<Vec<u8>> = Arc::new(kopr_testkit::random_bytes(1, mib << 20));
    let total = n * data.len();
    let name = |i: usize| format!("p{i:032x}");
    println!("{n} objects of {mib} MiB, {par} at once, s3s-fs on loopback");

    let k = kopr(&ep, "kopr", SECRET_KEY);
    let t = Instant::now();
    threads(n, par, |i| {
        k.put_blob(&name(i), &data, &PutOptions::default())
            .expect("put")
    });
    let kput = t.elapsed();
    let t = Instant::now();
    threads(n, par, |i| {
        assert_eq!(
            k.get_blob(&name(i), 0, None).expect("get").len(),
            data.len()
        )
    });
    let kget = t.elapsed();
    let t = Instant::now();
    threads(n * 16, par, |i| {
        let off = ((i % 16) * (data.len() / 16)) as u64;
        k.get_blob(&name(i / 16), off, Some(64 << 10))
            .expect("range");
    });
    let krange = t.elapsed();
    let t = Instant::now();
    assert_eq!(k.list_all("p").expect("list").len(), n);
    let klist = t.elapsed();
    let t = Instant::now();
    threads(n, par, |i| k.delete_blob(&name(i)).expect("delete"));
    let kdel = t.elapsed();

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (dput, dget, drange, dlist, ddel) = rt.block_on(async {
        let op = opendal(&ep, "dal", SECRET_KEY);
        let t = Instant::now();
        stream::iter(0..n)
            .map(|i| {
                let (op, d) = (op.clone(), data.clone());
                async move { op.write(&name(i), d.to_vec()).await.map(|_| ()) }
            })
            .buffer_unordered(par)
            .try_collect::<Vec<_>>()
            .await
            .expect("put");
        let put = t.elapsed();
        let t = Instant::now();
        stream::iter(0..n)
            .map(|i| {
                let op = op.clone();
                async move { op.read(&name(i)).await.map(|b| b.len()) }
            })
            .buffer_unordered(par)
            .try_collect::<Vec<_>>()
            .await
            .expect("get");
        let get = t.elapsed();
        let t = Instant::now();
        let len = data.len() as u64;
        stream::iter(0..n * 16)
            .map(|i| {
                let op = op.clone();
                async move {
                    let off = (i as u64 % 16) * (len / 16);
                    op.read_with(&name(i / 16))
                        .range(off..off + (64 << 10))
                        .await
                        .map(|b| b.len())
                }
            })
            .buffer_unordered(par)
            .try_collect::<Vec<_>>()
            .await
            .expect("range");
        let range = t.elapsed();
        let t = Instant::now();
        let listed = op.list("").await.expect("list");
        assert_eq!(listed.len(), n);
        let list = t.elapsed();
        let t = Instant::now();
        stream::iter(0..n)
            .map(|i| {
                let op = op.clone();
                async move { op.delete(&name(i)).await }
            })
            .buffer_unordered(par)
            .try_collect::<Vec<_>>()
            .await
            .expect("delete");
        (put, get, range, list, t.elapsed())
    });

    println!("| step | kopr S3 client | OpenDAL S3 |");
    println!("|---|---|---|");
    println!("| put | {} | {} |", rate(total, kput), rate(total, dput));
    println!("| get | {} | {} |", rate(total, kget), rate(total, dget));
    let ranged = n * 16 * (64 << 10);
    println!(
        "| 64 KiB ranged gets | {} | {} |",
        rate(ranged, krange),
        rate(ranged, drange)
    );
    println!(
        "| list {n} | {:.3} s | {:.3} s |",
        klist.as_secs_f64(),
        dlist.as_secs_f64()
    );
    println!(
        "| delete {n} | {:.3} s | {:.3} s |",
        kdel.as_secs_f64(),
        ddel.as_secs_f64()
    );

    // Error messages: a wrong secret key, a port nobody listens on.
    let bad = kopr(&ep, "kopr", "wrong-secret");
    println!(
        "\nwrong secret, kopr:    {}",
        bad.get_blob("pmissing", 0, None).unwrap_err()
    );
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(1);
    let gone = kopr(&format!("127.0.0.1:{free}"), "kopr", SECRET_KEY);
    println!(
        "unreachable, kopr:     {}",
        gone.get_blob("pmissing", 0, None).unwrap_err()
    );
    rt.block_on(async {
        let e = opendal(&ep, "dal", "wrong-secret")
            .read("pmissing")
            .await
            .unwrap_err();
        println!("wrong secret, OpenDAL: {e}");
        let t = Instant::now();
        let e = opendal(&format!("127.0.0.1:{free}"), "dal", SECRET_KEY)
            .read("pmissing")
            .await
            .unwrap_err();
        println!(
            "unreachable, OpenDAL:  {e} ({:.1} s)",
            t.elapsed().as_secs_f64()
        );
    });
}
