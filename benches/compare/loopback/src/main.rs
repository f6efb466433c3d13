//! `loopback ok|error`: binds 127.0.0.1:0, prints `PORT <n>`, and answers every POST with a
//! realistic success body (~4 KiB, tokens of real-world lengths) or a NotAuthorizedException,
//! until killed. One thread per connection, keep-alive; no allocation per request but the
//! request body's (the server's cost is part of every client's figure, the floor's included).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

fn token(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut state = seed;
    (0..len)
        .map(|i| {
            if i > 0 && (i == len / 5 || i == 4 * len / 5) {
                return '.';
            }
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            char::from(ALPHABET[(state >> 58) as usize])
        })
        .collect()
}

fn response(error: bool) -> Vec<u8> {
    let (status, extra, body) = if error {
        (
            "400 Bad Request",
            "x-amzn-errortype: NotAuthorizedException\r\n",
            r#"{"__type":"NotAuthorizedException","message":"Refresh Token has been revoked"}"#
                .to_owned(),
        )
    } else {
        (
            "200 OK",
            "",
            format!(
                r#"{{"AuthenticationResult":{{"AccessToken":"{}","ExpiresIn":3600,"TokenType":"Bearer","RefreshToken":"{}","IdToken":"{}"}},"ChallengeParameters":{{}}}}"#,
                token(1_100, 1),
                token(1_700, 2),
                token(1_250, 3)
            ),
        )
    };
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-requestid: 3f2c1b9e-0000-4a6b-9f1e-2b3c4d5e6f70\r\n{extra}content-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn serve(stream: TcpStream, answer: &[u8]) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            const NAME: &str = "content-length:";
            if let Some((name, value)) = line.split_at_checked(NAME.len())
                && name.eq_ignore_ascii_case(NAME)
            {
                length = value.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        writer.write_all(answer)?;
    }
}

fn main() {
    let error = std::env::args().nth(1).is_some_and(|m| m == "error");
    let answer: &'static [u8] = Box::leak(response(error).into_boxed_slice());
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    #[allow(clippy::print_stdout)]
    {
        println!("PORT {}", listener.local_addr().expect("address").port());
    }
    let _ = std::io::stdout().flush();
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream, answer));
    }
}
