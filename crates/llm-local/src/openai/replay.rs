//! A local HTTP server that answers with recorded responses of a real OpenAI-compatible server,
//! so code that talks to such servers can be tested offline, byte for byte against what the
//! server sent. It keeps every request it received for inspection.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::Value;

/// One recorded response: the HTTP status and the JSON body.
#[derive(Debug, Clone, Deserialize)]
pub struct Recorded {
    /// HTTP status code.
    pub status: u16,
    /// The JSON body.
    pub body: Value,
}

/// A request the server received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The JSON body (`Null` when there was none).
    pub body: Value,
}

/// A running replay server on 127.0.0.1 (stopped when the process ends).
pub struct ReplayServer {
    base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl ReplayServer {
    /// Serves `responses`, keyed `"METHOD /path"`, each for as many requests as come. A request
    /// whose key is missing gets HTTP 404.
    pub fn start(responses: BTreeMap<String, Recorded>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base_url = format!("http://{}/v1", listener.local_addr()?);
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let responses = Arc::new(responses);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (responses, log) = (Arc::clone(&responses), Arc::clone(&log));
                std::thread::spawn(move || serve(stream, &responses, &log));
            }
        });
        Ok(ReplayServer { base_url, received })
    }

    /// The base URL to put after `openai:` (ends in `/v1`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The requests received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Answers the requests of one connection (keep-alive) until it closes.
fn serve(stream: TcpStream, responses: &BTreeMap<String, Recorded>, log: &Mutex<Vec<Received>>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        let key = format!("{} {}", request.method, request.path);
        let (status, body) = responses
            .get(&key)
            .map_or((404, "{\"detail\":\"Not Found\"}".to_string()), |r| {
                (r.status, r.body.to_string())
            });
        if let Ok(mut log) = log.lock() {
            log.push(request);
        }
        let head = format!(
            "HTTP/1.1 {status} Recorded\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if writer
            .write_all(head.as_bytes())
            .and_then(|()| writer.write_all(body.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

fn read_request(reader: &mut impl BufRead) -> Option<Received> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|&n| n > 0)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok().filter(|&n| n > 0)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        method,
        path,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}
