//! A small static file server for the page: loopback only, GET and HEAD,
//! the right MIME types (`.wasm` included) and a strict Content-Security-Policy.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};

/// The policy sent with every response: nothing from anywhere but this server.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; worker-src 'self' blob:; \
object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The MIME type of a file by its extension.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "wasm" => "application/wasm",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// The file under `root` a request path names, `None` for anything that
/// would leave `root`. `/` is `index.html`; the query string is ignored.
pub fn resolve(root: &Path, request_path: &str) -> Option<PathBuf> {
    let path = request_path.split(['?', '#']).next().unwrap_or("/");
    let decoded = percent_decode(path)?;
    let relative = decoded.trim_start_matches('/');
    let relative = if relative.is_empty() || relative.ends_with('/') {
        format!("{relative}index.html")
    } else {
        relative.to_string()
    };
    let mut resolved = root.to_path_buf();
    for component in Path::new(&relative).components() {
        match component {
            Component::Normal(part) => resolved.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(resolved)
}

fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    kind: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Content-Security-Policy: {CONTENT_SECURITY_POLICY}\r\nX-Content-Type-Options: nosniff\r\n\
         Referrer-Policy: no-referrer\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}

fn handle(mut stream: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut request_line = String::new();
    BufReader::new(&stream).read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"only GET and HEAD",
            false,
        );
    }
    let head_only = method == "HEAD";
    match resolve(root, path).filter(|p| p.is_file()) {
        Some(file) => match std::fs::read(&file) {
            Ok(body) => respond(&mut stream, "200 OK", content_type(&file), &body, head_only),
            Err(_) => respond(
                &mut stream,
                "500 Internal Server Error",
                "text/plain",
                b"cannot read the file",
                head_only,
            ),
        },
        None => respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            b"not found",
            head_only,
        ),
    }
}

/// Serves `root` on `127.0.0.1:port` until the process ends; `on_ready` gets
/// the address once listening.
pub fn serve(root: &Path, port: u16, on_ready: impl FnOnce(&str)) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let address = format!("http://{}", listener.local_addr()?);
    on_ready(&address);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            let _ = handle(stream, &root);
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root() {
        let root = Path::new("/srv/www");
        assert_eq!(
            resolve(root, "/"),
            Some(PathBuf::from("/srv/www/index.html"))
        );
        assert_eq!(
            resolve(root, "/pkg/a.wasm?v=1"),
            Some(PathBuf::from("/srv/www/pkg/a.wasm"))
        );
        assert_eq!(
            resolve(root, "/samples/sc%C3%A8ne.png"),
            Some(PathBuf::from("/srv/www/samples/scène.png"))
        );
        assert_eq!(resolve(root, "/../etc/passwd"), None);
        assert_eq!(resolve(root, "/a/%2e%2e/%2e%2e/etc"), None);
    }

    #[test]
    fn wasm_and_scripts_get_their_mime_types() {
        assert_eq!(content_type(Path::new("x.wasm")), "application/wasm");
        assert!(content_type(Path::new("app.js")).starts_with("text/javascript"));
        assert!(CONTENT_SECURITY_POLICY.contains("connect-src 'self'"));
    }
}
