//! Command-line mistakes, told without repeating what was typed.
//!
//! clap quotes the offending argument ("unexpected argument 'eyJ…' found"), and what a user
//! types by mistake is often the very secret that must not be on the command line: a token
//! pasted as a stray argument, or as the value of the wrong flag. These messages name only what
//! the program defines (flag names, possible values), never a value from argv.

use clap::error::{ContextKind, ContextValue, ErrorKind};

/// A context value that comes from the program's own definitions, as text.
fn defined(e: &clap::Error, kind: ContextKind) -> Option<String> {
    match e.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) => Some(v.join(", ")),
        ContextValue::StyledStr(s) => Some(s.to_string()),
        _ => None,
    }
}

/// One line saying what is wrong with the command line, and a hint.
pub(crate) fn describe(e: &clap::Error) -> (String, &'static str) {
    const HELP: &str = "see `cogref --help`, or `cogref <command> --help`";
    // For these kinds InvalidArg is the name of one of our arguments, not something typed.
    let arg = || defined(e, ContextKind::InvalidArg).unwrap_or_else(|| "an argument".into());
    let message = match e.kind() {
        ErrorKind::UnknownArgument => {
            return (
                "unexpected argument (not repeated here, in case it is a secret)".into(),
                "tokens are never taken from the command line: pipe the refresh token on \
                 standard input or use --refresh-token-file; see `cogref <command> --help`",
            );
        }
        ErrorKind::InvalidSubcommand => {
            "unknown command (not repeated here); the commands are refresh, revoke, inspect, emulator \
             and demo"
                .into()
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let mut m = format!("invalid value for {} (not repeated here)", arg());
            if let Some(valid) = defined(e, ContextKind::ValidValue) {
                m.push_str(&format!("; possible values: {valid}"));
            }
            m
        }
        ErrorKind::MissingRequiredArgument => format!("missing {}", arg()),
        ErrorKind::ArgumentConflict => match defined(e, ContextKind::PriorArg) {
            Some(prior) => format!("{} cannot be used with {prior}", arg()),
            None => format!("{} cannot be used with another argument given", arg()),
        },
        ErrorKind::NoEquals
        | ErrorKind::TooManyValues
        | ErrorKind::TooFewValues
        | ErrorKind::WrongNumberOfValues => format!("wrong number of values for {}", arg()),
        ErrorKind::MissingSubcommand => {
            "a command is needed: refresh, revoke, inspect, emulator or demo".into()
        }
        ErrorKind::InvalidUtf8 => "an argument is not valid UTF-8".into(),
        _ => "invalid command line".into(),
    };
    (message, HELP)
}
