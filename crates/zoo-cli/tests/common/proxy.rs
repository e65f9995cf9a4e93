//! A small fault-injecting HTTP proxy between `zoo pull` and `zoo serve`: it can cut a
//! download after k body bytes, flip a bit, answer a ranged request with the whole file, or
//! trickle bytes slowly. It logs every request line with its `Range` header.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Cut the next `resolve` response body after this many bytes (once).
    pub cut_at: Option<u64>,
    /// Flip one bit at this body offset of every `resolve` response.
    pub flip_at: Option<u64>,
    /// Drop `Range` headers: the server answers 200 with the whole file.
    pub ignore_range: bool,
    /// Send at most this many bytes per pause.
    pub slow: Option<(usize, Duration)>,
    /// Answer requests whose line contains the text with an error instead of passing them on.
    pub busy: Option<Busy>,
    /// Stop sending a `resolve` body after this many bytes and hold the connection open this
    /// long (once), as a stalled server does.
    pub stall_at: Option<(u64, Duration)>,
}

/// The proxy answers for the hub: `times` requests matching `matching` get `status`, with a
/// `Retry-After` header when given.
#[derive(Debug, Clone)]
pub struct Busy {
    pub matching: String,
    pub times: usize,
    pub status: u16,
    pub retry_after: Option<String>,
}

pub struct Proxy {
    pub url: String,
    pub faults: Arc<Mutex<Faults>>,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let faults = Arc::new(Mutex::new(Faults::default()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let upstream = upstream.trim_start_matches("http://").to_string();
        let (f, l) = (faults.clone(), log.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (f, l, up) = (f.clone(), l.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &up, &f, &l);
                });
            }
        });
        Proxy { url, faults, log }
    }

    pub fn set(&self, faults: Faults) {
        *self.faults.lock().unwrap() = faults;
    }

    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn read_head(r: &mut impl BufRead) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            return Ok(lines);
        }
        lines.push(line);
    }
}

fn header(lines: &[String], name: &str) -> Option<String> {
    lines.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn handle(
    client: TcpStream,
    upstream: &str,
    faults: &Mutex<Faults>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut from_client = BufReader::new(client.try_clone()?);
    let mut to_client = client;
    let head = read_head(&mut from_client)?;
    let len: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    from_client.read_exact(&mut body)?;
    let resolve = head[0].contains("/resolve/") && head[0].starts_with("GET");
    let f = faults.lock().unwrap().clone();
    log.lock().unwrap().push(format!(
        "{} range={}",
        head[0],
        header(&head, "range").unwrap_or_default()
    ));
    {
        let mut faults = faults.lock().unwrap();
        if let Some(b) = faults.busy.as_mut()
            && b.times > 0
            && head[0].contains(&b.matching)
        {
            b.times -= 1;
            let body = format!("{{\"error\": \"busy ({})\"}}", b.status);
            let retry = b
                .retry_after
                .as_ref()
                .map(|r| format!("Retry-After: {r}\r\n"))
                .unwrap_or_default();
            let reply = format!(
                "HTTP/1.1 {} Busy\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{retry}Connection: close\r\n\r\n{body}",
                b.status,
                body.len()
            );
            to_client.write_all(reply.as_bytes())?;
            return Ok(());
        }
    }
    let mut out = String::new();
    out.push_str(&head[0]);
    out.push_str("\r\n");
    for l in &head[1..] {
        let k = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if k == "connection" || (k == "range" && f.ignore_range && resolve) {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(out.as_bytes())?;
    up.write_all(&body)?;
    let mut from_up = BufReader::new(up);
    let rhead = read_head(&mut from_up)?;
    let mut rout = String::new();
    for l in &rhead {
        if l.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        rout.push_str(l);
        rout.push_str("\r\n");
    }
    rout.push_str("Connection: close\r\n\r\n");
    to_client.write_all(rout.as_bytes())?;
    if head[0].starts_with("HEAD") {
        return Ok(());
    }
    let cut = if resolve { f.cut_at } else { None };
    let stall = if resolve { f.stall_at } else { None };
    let mut sent: u64 = 0;
    let mut buf = vec![0u8; f.slow.map(|(n, _)| n).unwrap_or(64 << 10)];
    loop {
        let n = from_up.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = &mut buf[..n];
        if let (true, Some(at)) = (resolve, f.flip_at)
            && at >= sent
            && at < sent + n as u64
        {
            chunk[(at - sent) as usize] ^= 0x01;
        }
        if let Some(k) = cut
            && sent + n as u64 >= k
        {
            // Cut once: the next response goes through whole.
            faults.lock().unwrap().cut_at = None;
            to_client.write_all(&chunk[..(k - sent) as usize])?;
            to_client.flush()?;
            let _ = to_client.shutdown(Shutdown::Both);
            return Ok(());
        }
        if let Some((k, hold)) = stall
            && sent + n as u64 >= k
        {
            faults.lock().unwrap().stall_at = None;
            to_client.write_all(&chunk[..(k - sent) as usize])?;
            to_client.flush()?;
            std::thread::sleep(hold);
            let _ = to_client.shutdown(Shutdown::Both);
            return Ok(());
        }
        to_client.write_all(chunk)?;
        sent += n as u64;
        if let Some((_, pause)) = f.slow {
            std::thread::sleep(pause);
        }
    }
    Ok(())
}
