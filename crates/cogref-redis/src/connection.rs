//! Connections to the server: one pooled connection for commands (replaced when it turns out
//! dead, as after a server restart), and a fresh one for each wait on the channel.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use redis::{Client, Connection, RedisResult};

use crate::error::RedisStoreError;

pub(crate) struct Connector {
    client: Client,
    /// `host:port` for messages: the URL may hold a password.
    server: String,
    connect_timeout: Duration,
    io_timeout: Duration,
    pooled: Mutex<Option<Connection>>,
}

impl Connector {
    pub(crate) fn new(client: Client, connect_timeout: Duration, io_timeout: Duration) -> Self {
        Self {
            server: server_name(&client),
            client,
            connect_timeout,
            io_timeout,
            pooled: Mutex::new(None),
        }
    }

    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    pub(crate) fn error(&self, action: &'static str, source: redis::RedisError) -> RedisStoreError {
        redis_error(&self.server, action, source)
    }

    fn connect(&self) -> RedisResult<Connection> {
        let connection = self
            .client
            .get_connection_with_timeout(self.connect_timeout)?;
        connection.set_read_timeout(Some(self.io_timeout))?;
        connection.set_write_timeout(Some(self.io_timeout))?;
        Ok(connection)
    }

    fn slot(&self) -> MutexGuard<'_, Option<Connection>> {
        self.pooled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `command` on the pooled connection. A pooled connection that turns out dead is
    /// replaced and `command` run once more on the new one, so every command given here must be
    /// safe to run twice (the scripts are written so). A connection that failed otherwise is
    /// dropped: it may hold half a reply.
    pub(crate) fn run<R>(
        &self,
        action: &'static str,
        command: impl Fn(&mut Connection) -> RedisResult<R>,
    ) -> Result<R, RedisStoreError> {
        let mut slot = self.slot();
        let (mut connection, reused) = match slot.take() {
            Some(c) => (c, true),
            None => (
                self.connect().map_err(|e| self.error("connecting", e))?,
                false,
            ),
        };
        match command(&mut connection) {
            Ok(reply) => {
                *slot = Some(connection);
                Ok(reply)
            }
            Err(e) if reused && is_dropped(&e) => {
                tracing::debug!(server = %self.server, error = %e, "redis connection lost; reconnecting once");
                let mut fresh = self.connect().map_err(|e| self.error("reconnecting", e))?;
                let reply = command(&mut fresh).map_err(|e| self.error(action, e))?;
                *slot = Some(fresh);
                Ok(reply)
            }
            Err(e) => Err(self.error(action, e)),
        }
    }

    /// A connection of its own (for a subscription), with the configured timeouts.
    pub(crate) fn dedicated(&self) -> Result<Connection, RedisStoreError> {
        self.connect().map_err(|e| self.error("connecting", e))
    }
}

/// `host:port` of the server, for messages: the URL may hold a password.
pub(crate) fn server_name(client: &Client) -> String {
    client.get_connection_info().addr().to_string()
}

pub(crate) fn redis_error(
    server: &str,
    action: &'static str,
    source: redis::RedisError,
) -> RedisStoreError {
    RedisStoreError::Redis {
        server: server.to_owned(),
        action,
        source,
    }
}

/// Whether a command failed because the connection died (a server restart): worth one retry on
/// a new connection.
pub(crate) fn is_dropped(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error()
}
