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

Exit codes: 0 ok, 2 invalid input, 3 sign-in required, 4 retryable failure,
5 configuration error, 1 anything else.")]
    Refresh(Box<RefreshArgs>),
    /// Decode an access or ID token read from standard input (the signature is NOT checked).
    #[command(after_help = "Example:
  cogref refresh --client-id … --output token < rt.txt | cogref inspect")]
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
    /// The confirmed device key, when device remembering is on.
    #[arg(long, value_name = "KEY")]
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
}

#[derive(Args, Debug)]
pub(crate) struct InspectArgs {
    /// Print the claims as JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
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
