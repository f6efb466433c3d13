//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Refresh Amazon Cognito user-pool tokens (GetTokensFromRefreshToken), inspect them, and run a
/// local Cognito emulator.
#[derive(Parser, Debug)]
#[command(name = "cogref", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Exchange a refresh token for new tokens.
    #[command(after_help = "Examples:
  cogref refresh --client-id 1example23456789 --region eu-west-1 < refresh-token.txt
  cogref refresh --client-id 1example23456789 --store tokens.json --output token
  eval \"$(cogref refresh --client-id … --refresh-token-file rt.txt --output env)\"

Secrets never come from the command line: the refresh token from standard input,
--refresh-token-file or --store; the client secret and the device key from a file or an
environment variable (the device key also from --store). Inputs over 64 KiB are refused.
Every token is checked against the token alphabet before anything is printed, and
--output env quotes each value for the shell.

Exit codes: 0 ok, 2 invalid input, 3 sign-in required, 4 retryable failure (nothing was
refreshed), 5 configuration error, 1 anything else.")]
    Refresh(Box<RefreshArgs>),
    /// Revoke a refresh token (sign out): RevokeToken ends the token, the access tokens issued
    /// from it and, with rotation, its whole lineage.
    #[command(after_help = "Examples:
  cogref revoke --client-id 1example23456789 --region eu-west-1 < refresh-token.txt
  cogref revoke --client-id 1example23456789 --store tokens.json

The refresh token comes from standard input, --refresh-token-file or --store, never from the
command line; the client secret from a file or an environment variable. With --store the
stored session is signed out: the token is revoked and the store keeps a tombstone (no token),
which every program sharing the store sees; a store already signed out is left as it is.

Exit codes: 0 revoked, 2 invalid input (not a refresh token), 3 Cognito refused with an error
that says the refresh token no longer works (sign in again), 4 retryable failure (nothing was
revoked, the store is untouched: try again), 5 configuration error (token revocation off for
the app client, a wrong or missing client secret), 1 anything else.")]
    Revoke(Box<RevokeArgs>),
    /// Decode an access or ID token read from standard input (the signature is NOT checked), or
    /// show a token store's session (--store): its deadline, sign-in time and clock skew.
    #[command(after_help = "Examples:
  cogref refresh --client-id … --output token < rt.txt | cogref inspect
  cogref inspect --store tokens.json --refresh-token-validity 30d")]
    Inspect(InspectArgs),
    /// Run the local Cognito emulator in the foreground, seeded with a pool, client and user.
    #[command(after_help = crate::emulator::after_help())]
    Emulator(EmulatorArgs),
    /// Start an emulator in-process and walk through refresh, rotation and reuse.
    #[command(after_help = "Example:
  cogref demo")]
    Demo,
}

/// Output formats of `refresh`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Output {
    /// One JSON object.
    Json,
    /// `export NAME=value` lines for a POSIX shell.
    Env,
    /// The bare access token.
    Token,
}

#[derive(Args, Debug)]
pub(crate) struct RefreshArgs {
    /// The app client id.
    #[arg(long, env = "COGNITO_CLIENT_ID")]
    pub(crate) client_id: String,
    /// Read the refresh token from this file (`-` for standard input, the default when no
    /// --store is given).
    #[arg(long, value_name = "FILE")]
    pub(crate) refresh_token_file: Option<PathBuf>,
    /// Refused: a token in argv is visible to every user of the machine (ps, shell history).
    #[arg(long, value_name = "TOKEN", hide = true)]
    pub(crate) refresh_token: Option<String>,
    /// Keep the tokens in this cogref token store (JSON, mode 0600): the refresh token is read
    /// from it and a rotated one written back atomically. Created from --refresh-token-file or
    /// standard input on first use.
    #[arg(long, value_name = "FILE")]
    pub(crate) store: Option<PathBuf>,
    /// Read the client secret from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "client_secret_file")]
    pub(crate) client_secret_env: Option<String>,
    /// Read the client secret from this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) client_secret_file: Option<PathBuf>,
    /// Read the confirmed device key (device remembering) from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "device_key_file")]
    pub(crate) device_key_env: Option<String>,
    /// Read the confirmed device key (device remembering) from this file. With --store, the
    /// key in the store wins once there is one.
    #[arg(long, value_name = "FILE")]
    pub(crate) device_key_file: Option<PathBuf>,
    /// Refused: the device key is a secret, and argv is visible to every user of the machine.
    #[arg(long, value_name = "KEY", hide = true)]
    pub(crate) device_key: Option<String>,
    /// Client metadata for Lambda triggers, `KEY=VALUE` (repeatable).
    #[arg(long = "metadata", value_name = "KEY=VALUE")]
    pub(crate) metadata: Vec<String>,
    /// AWS region (default: AWS_REGION, then AWS_DEFAULT_REGION).
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// Use the FIPS endpoint (default: AWS_USE_FIPS_ENDPOINT).
    #[arg(long)]
    pub(crate) fips: bool,
    /// Use the dual-stack endpoint (default: AWS_USE_DUALSTACK_ENDPOINT).
    #[arg(long)]
    pub(crate) dual_stack: bool,
    /// Send to this URL instead (default: AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER, then
    /// AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL")]
    pub(crate) endpoint_url: Option<String>,
    /// Never resend a request that may have reached Cognito (safe with rotation and a grace
    /// period of 0).
    #[arg(long)]
    pub(crate) rotation_safe: bool,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value = "json")]
    pub(crate) output: Output,
    /// With --store: if the refresh fails with a passing error (exit 4) while the stored access
    /// token is still valid, print the stored tokens instead (a warning goes to stderr, exit 0).
    /// Without it, `refresh` fails whenever nothing was refreshed.
    #[arg(long, requires = "store")]
    pub(crate) cached_on_failure: bool,
    /// With --store: the app client's refresh-token validity (`30d`, `12h`, `90m`, `3600s` or
    /// seconds), recorded in the store so that the session's deadline is known
    /// (`cogref inspect --store`).
    #[arg(long, requires = "store", value_name = "DURATION", value_parser = crate::time::parse_validity)]
    pub(crate) refresh_token_validity: Option<std::time::Duration>,
}

#[derive(Args, Debug)]
pub(crate) struct RevokeArgs {
    /// The app client id.
    #[arg(long, env = "COGNITO_CLIENT_ID")]
    pub(crate) client_id: String,
    /// Read the refresh token from this file (`-` for standard input, the default when no
    /// --store is given).
    #[arg(long, value_name = "FILE", conflicts_with = "store")]
    pub(crate) refresh_token_file: Option<PathBuf>,
    /// Refused: a token in argv is visible to every user of the machine (ps, shell history).
    #[arg(long, value_name = "TOKEN", hide = true)]
    pub(crate) refresh_token: Option<String>,
    /// Sign out the session kept in this cogref token store: revoke its refresh token and
    /// replace it with a tombstone.
    #[arg(long, value_name = "FILE")]
    pub(crate) store: Option<PathBuf>,
    /// Read the client secret from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "client_secret_file")]
    pub(crate) client_secret_env: Option<String>,
    /// Read the client secret from this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) client_secret_file: Option<PathBuf>,
    /// AWS region (default: AWS_REGION, then AWS_DEFAULT_REGION).
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// Use the FIPS endpoint (default: AWS_USE_FIPS_ENDPOINT).
    #[arg(long)]
    pub(crate) fips: bool,
    /// Use the dual-stack endpoint (default: AWS_USE_DUALSTACK_ENDPOINT).
    #[arg(long)]
    pub(crate) dual_stack: bool,
    /// Send to this URL instead (default: AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER, then
    /// AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL")]
    pub(crate) endpoint_url: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct InspectArgs {
    /// Print the claims (or the session) as JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Show the session kept in this cogref token store instead of a token from standard
    /// input: its state, sign-in time, deadline, the access token's expiry and the clock skew.
    /// No token is printed.
    #[arg(long, value_name = "FILE")]
    pub(crate) store: Option<PathBuf>,
    /// With --store: the app client's refresh-token validity (`30d`, `12h`, …), for the
    /// deadline when the store does not record it.
    #[arg(long, requires = "store", value_name = "DURATION", value_parser = crate::time::parse_validity)]
    pub(crate) refresh_token_validity: Option<std::time::Duration>,
}

#[derive(Args, Debug)]
pub(crate) struct EmulatorArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 9229)]
    pub(crate) port: u16,
    /// Rotation grace period in seconds (0..=60); `--no-rotation` turns rotation off.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=60))]
    pub(crate) grace: u32,
    /// Seed a client without refresh-token rotation.
    #[arg(long)]
    pub(crate) no_rotation: bool,
    /// Where to write the seeded user's refresh token (mode 0600).
    #[arg(long, default_value = "emulator-refresh-token", value_name = "FILE")]
    pub(crate) token_file: PathBuf,
}
