//! What the user hands the command: standard input, token and secret files, environment
//! variables and the token store, each read with a size cap.
//!
//! A refresh token is about 2 KiB and a store about 6 KiB, so anything past [`MAX_INPUT_BYTES`]
//! is a mistake (`yes | cogref refresh`, a log file, `/dev/zero`) and is refused with a clear
//! error instead of being read until memory runs out. Paths are echoed in errors only when they
//! look like paths: a token pasted where a file name belongs is not repeated to the terminal.

use std::io::Read;
use std::path::Path;

use cogref_core::redact::redact;

use crate::exit::{Code, Failure};

/// The largest input accepted: 64 KiB.
pub(crate) const MAX_INPUT_BYTES: usize = 64 * 1024;

/// Reads at most [`MAX_INPUT_BYTES`] of `reader` as UTF-8 text; `what` names it in errors
/// ("the refresh token file x").
pub(crate) fn capped(reader: impl Read, what: &str, code: Code) -> Result<String, Failure> {
    let mut bytes = Vec::new();
    // One byte past the cap tells "too large" from "exactly at the cap".
    reader
        .take(MAX_INPUT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::new(code, format!("could not read {what}: {e}"), None))?;
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(Failure::new(
            code,
            format!(
                "{what} holds more than {} KiB, far more than any token: refusing to read it",
                MAX_INPUT_BYTES / 1024
            ),
            Some("give the file or pipe that holds just the token"),
        ));
    }
    String::from_utf8(bytes).map_err(|_| Failure::new(code, format!("{what} is not text"), None))
}

/// A file read with [`capped`]; `what` is e.g. "the refresh token".
pub(crate) fn file(path: &Path, what: &str, code: Code) -> Result<String, Failure> {
    let described = format!("{what} from {}", shown_path(path));
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::new(code, format!("could not read {described}: {e}"), None))?;
    capped(file, &described, code)
}

/// Standard input read with [`capped`].
pub(crate) fn stdin(what: &str, code: Code) -> Result<String, Failure> {
    capped(
        std::io::stdin().lock(),
        &format!("{what} from standard input"),
        code,
    )
}

/// An environment variable, trimmed; its name is the user's choice and is shown, its value never.
pub(crate) fn env(var: &str, what: &str, code: Code) -> Result<String, Failure> {
    let shown = shown_var(var);
    let value = std::env::var(var).map_err(|_| {
        Failure::new(
            code,
            format!("environment variable {shown} ({what}) is not set or not text"),
            None,
        )
    })?;
    if value.len() > MAX_INPUT_BYTES {
        return Err(Failure::new(
            code,
            format!("environment variable {shown} ({what}) is far too long"),
            None,
        ));
    }
    Ok(value.trim().to_owned())
}

/// An environment variable's name for an error message: as given if it looks like one
/// (`CLIENT_SECRET`: capitals, digits, `_`), else not repeated, since the value itself may have
/// been pasted where its name belongs.
pub(crate) fn shown_var(name: &str) -> String {
    let conventional = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if conventional {
        name.to_owned()
    } else {
        "(a name that is not shown: it does not look like one)".into()
    }
}

/// Checks the token store before the session store reads it: a regular file (not a FIFO or a
/// device that never ends) of at most [`MAX_INPUT_BYTES`]. A store that does not exist yet is
/// fine: the first refresh creates it.
pub(crate) fn check_store(path: &Path) -> Result<(), Failure> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Failure::new(
                Code::Failure,
                format!("could not read the store {}: {e}", shown_path(path)),
                None,
            ));
        }
    };
    if !meta.is_file() {
        return Err(Failure::new(
            Code::Failure,
            format!("the store {} is not a regular file", shown_path(path)),
            Some("--store takes the path of a JSON file that cogref creates and updates"),
        ));
    }
    if meta.len() > MAX_INPUT_BYTES as u64 {
        return Err(Failure::new(
            Code::Failure,
            format!(
                "the store {} holds more than {} KiB, far more than a token store: refusing to read it",
                shown_path(path),
                MAX_INPUT_BYTES / 1024
            ),
            Some("--store takes the path of a JSON file that cogref creates and updates"),
        ));
    }
    Ok(())
}

/// A path for an error message: as given, unless it has no directory separator and looks like a
/// credential (a token pasted where a file name was expected), which is not repeated.
pub(crate) fn shown_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    if !text.contains(std::path::MAIN_SEPARATOR) && redact(&text) != text {
        "(a path that looks like a token; not shown)".into()
    } else {
        text.escape_debug().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_past_the_cap_is_refused_without_reading_it_all() {
        // An endless source, like `yes`: reading stops one byte past the cap.
        let endless = std::io::repeat(b'y');
        let e = capped(endless, "standard input", Code::InvalidInput).expect_err("too large");
        assert_eq!(e.code, Code::InvalidInput);
        assert!(e.message.contains("more than 64 KiB"), "{}", e.message);
        let exact = vec![b'a'; MAX_INPUT_BYTES];
        assert_eq!(
            capped(&exact[..], "x", Code::InvalidInput)
                .expect("at the cap")
                .len(),
            MAX_INPUT_BYTES
        );
    }

    #[test]
    fn a_secret_given_as_an_environment_variable_name_is_not_echoed() {
        assert_eq!(shown_var("COGNITO_CLIENT_SECRET"), "COGNITO_CLIENT_SECRET");
        assert!(!shown_var("abcdef0123456789abcdef0123").contains("abcdef"));
        assert!(!shown_var(&"A".repeat(65)).contains("AAAA"));
    }

    #[test]
    fn a_token_given_as_a_path_is_not_echoed() {
        let token = "eyJraWQiOiJhYmMifQ.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert!(!shown_path(Path::new(token)).contains("eyJ"));
        assert_eq!(shown_path(Path::new("rt.txt")), "rt.txt");
        assert_eq!(
            shown_path(Path::new("/home/someone/.config/cogref/tokens.json")),
            "/home/someone/.config/cogref/tokens.json"
        );
    }
}
